// Package jsonpatch computes the RFC 6902 JSON Patch that turns the JSON encoding of one Go value
// into the JSON encoding of another of the same type, by walking the typed values.
//
// The webhook used to marshal the pod before and after injection and diff the two documents
// (controller-runtime's PatchResponseFromRaw): two encodings, two decodings into generic maps and
// a walk over both, about two thirds of the time of a review. Walking the typed values instead
// skips every unchanged subtree with one comparison and encodes only the values that changed. The
// patch has the same granularity (objects key by key, arrays element by element), so fields this
// build's API types do not know stay untouched on the API server's copy of the object.
//
// The encoding the patch describes is encoding/json's: field names and omitempty/omitzero from the
// struct tags, embedded structs promoted, json.Marshaler and encoding.TextMarshaler values and
// fields with the ",string" option treated as opaque values.
package jsonpatch

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Diff returns the JSON Patch (a JSON array of operations) that turns json.Marshal(before) into
// json.Marshal(after), or nil when they are equal. before and after must be pointers to values of
// the same type.
func Diff(before, after any) ([]byte, error) {
	a, b := reflect.ValueOf(before), reflect.ValueOf(after)
	if a.Kind() != reflect.Pointer || a.IsNil() || b.Kind() != reflect.Pointer || b.IsNil() || a.Type() != b.Type() {
		return nil, fmt.Errorf("jsonpatch: want two non-nil pointers of one type, got %T and %T", before, after)
	}
	d := differ{buf: bytes.NewBuffer(make([]byte, 0, 4096)), path: make([]byte, 0, 128)}
	d.buf.WriteByte('[')
	if err := d.value(a.Elem(), b.Elem()); err != nil {
		return nil, err
	}
	if d.ops == 0 {
		return nil, nil
	}
	d.buf.WriteByte(']')
	return d.buf.Bytes(), nil
}

type differ struct {
	buf *bytes.Buffer
	enc *json.Encoder
	ops int
	// path is the JSON Pointer of the value being compared, tokens escaped; built as the walk
	// descends so that only operations turn it into a string.
	path []byte
}

// push appends a token to the path and returns the length to restore.
func (d *differ) push(token string) int {
	n := len(d.path)
	d.path = append(d.path, '/')
	d.path = append(d.path, token...)
	return n
}

func (d *differ) pushIndex(i int) int {
	n := len(d.path)
	d.path = strconv.AppendInt(append(d.path, '/'), int64(i), 10)
	return n
}

// pushKey appends a map key, escaped as RFC 6901 says ("~" as "~0", "/" as "~1").
func (d *differ) pushKey(key string) int {
	n := len(d.path)
	d.path = append(d.path, '/')
	for i := 0; i < len(key); i++ {
		switch key[i] {
		case '~':
			d.path = append(d.path, '~', '0')
		case '/':
			d.path = append(d.path, '~', '1')
		default:
			d.path = append(d.path, key[i])
		}
	}
	return n
}

// op appends one operation at the current path; v is the value of add and replace, invalid for
// remove.
func (d *differ) op(name string, v reflect.Value) error {
	if d.ops > 0 {
		d.buf.WriteByte(',')
	}
	d.ops++
	d.buf.WriteString(`{"op":"`)
	d.buf.WriteString(name)
	d.buf.WriteString(`","path":`)
	if plain(d.path) {
		d.buf.WriteByte('"')
		d.buf.Write(d.path)
		d.buf.WriteByte('"')
	} else {
		p, err := json.Marshal(string(d.path))
		if err != nil {
			return err
		}
		d.buf.Write(p)
	}
	if v.IsValid() {
		d.buf.WriteString(`,"value":`)
		if err := d.encode(v); err != nil {
			return err
		}
	}
	d.buf.WriteByte('}')
	return nil
}

// plain reports whether p needs no escaping as a JSON string (as encoding/json escapes).
func plain(p []byte) bool {
	for _, c := range p {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// encode writes v as encoding/json encodes it as part of its parent: through the pointer when v
// is addressable, so that MarshalJSON methods with pointer receivers apply as they do there.
func (d *differ) encode(v reflect.Value) error {
	if d.enc == nil {
		d.enc = json.NewEncoder(d.buf)
	}
	x := v.Interface()
	if v.CanAddr() {
		x = v.Addr().Interface()
	}
	if err := d.enc.Encode(x); err != nil {
		return err
	}
	d.buf.Truncate(d.buf.Len() - 1) // the Encoder's newline
	return nil
}

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// encodesItself reports whether values of t encode themselves, so that only a whole replacement
// is right.
func encodesItself(t reflect.Type) bool {
	for _, m := range []reflect.Type{marshalerType, textMarshalerType} {
		if t.Implements(m) || (t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(m)) {
			return true
		}
	}
	return false
}

// equal reports whether a and b hold deeply equal values, through pointers where it can so that
// large structs are not copied to be compared.
func equal(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.String:
		return a.String() == b.String()
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	}
	if a.CanAddr() && b.CanAddr() {
		return reflect.DeepEqual(a.Addr().Interface(), b.Addr().Interface())
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// replaceUnlessEqual is the operation for values compared as a whole.
func (d *differ) replaceUnlessEqual(a, b reflect.Value) error {
	if equal(a, b) {
		return nil
	}
	return d.op("replace", b)
}

// value appends the operations that turn a into b at path; both are present in their documents.
func (d *differ) value(a, b reflect.Value) error {
	t := a.Type()
	info := infoOf(t)
	if info.opaque {
		return d.replaceUnlessEqual(a, b)
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface:
		switch {
		case a.IsNil() && b.IsNil():
			return nil
		case a.IsNil() || b.IsNil() || t.Kind() == reflect.Interface:
			// null against a value, or values whose dynamic types may differ.
			return d.replaceUnlessEqual(a, b)
		}
		return d.value(a.Elem(), b.Elem())
	case reflect.Struct:
		for _, f := range info.fields {
			fa, aok := f.get(a)
			fb, bok := f.get(b)
			n := d.push(f.token)
			err := d.member(fa, fb, aok && f.present(fa), bok && f.present(fb))
			d.path = d.path[:n]
			if err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		return d.mapValue(a, b)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 || a.IsNil() != b.IsNil() {
			// []byte encodes as one base64 string; a nil slice as null.
			return d.replaceUnlessEqual(a, b)
		}
		return d.array(a, b)
	case reflect.Array:
		for i := 0; i < a.Len(); i++ {
			n := d.pushIndex(i)
			err := d.value(a.Index(i), b.Index(i))
			d.path = d.path[:n]
			if err != nil {
				return err
			}
		}
		return nil
	}
	return d.replaceUnlessEqual(a, b)
}

// member diffs an object member that may be absent from either document.
func (d *differ) member(a, b reflect.Value, inA, inB bool) error {
	switch {
	case inA && inB:
		return d.value(a, b)
	case inB:
		return d.op("add", b)
	case inA:
		return d.op("remove", reflect.Value{})
	}
	return nil
}

func (d *differ) mapValue(a, b reflect.Value) error {
	t := a.Type()
	// Keys of a string kind are used as they are; others (numbers, TextMarshalers) are encoded,
	// which this package does not reproduce. A nil map is null, an empty one {}.
	if t.Key().Kind() != reflect.String || a.IsNil() != b.IsNil() {
		return d.replaceUnlessEqual(a, b)
	}
	// Keys in order, so that the patch is the same for the same input.
	keys := make([]string, 0, max(a.Len(), b.Len()))
	for _, k := range b.MapKeys() {
		keys = append(keys, k.String())
	}
	for _, k := range a.MapKeys() {
		if !b.MapIndex(k).IsValid() {
			keys = append(keys, k.String())
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		kv := reflect.ValueOf(k).Convert(t.Key())
		va, vb := a.MapIndex(kv), b.MapIndex(kv)
		n := d.pushKey(k)
		err := d.member(va, vb, va.IsValid(), vb.IsValid())
		d.path = d.path[:n]
		if err != nil {
			return err
		}
	}
	return nil
}

// array diffs two non-nil slices. Elements inserted or removed in one place (a sidecar added
// before the first init container) become adds or removes at that index, so the elements around
// them keep whatever the API server's copy holds beyond this build's types; otherwise the tail is
// added or removed and the common length compared element by element.
func (d *differ) array(a, b reflect.Value) error {
	na, nb := a.Len(), b.Len()
	// at runs f with the path at index i.
	at := func(i int, f func() error) error {
		n := d.pushIndex(i)
		err := f()
		d.path = d.path[:n]
		return err
	}
	if na != nb {
		short := min(na, nb)
		pre := 0
		for pre < short && equal(a.Index(pre), b.Index(pre)) {
			pre++
		}
		suf := 0
		for suf < short-pre && equal(a.Index(na-1-suf), b.Index(nb-1-suf)) {
			suf++
		}
		if pre+suf == short {
			for i := 0; i < na-short; i++ {
				if err := at(pre, func() error { return d.op("remove", reflect.Value{}) }); err != nil {
					return err
				}
			}
			for i := pre; i < nb-suf && nb > na; i++ {
				if err := at(i, func() error { return d.op("add", b.Index(i)) }); err != nil {
					return err
				}
			}
			return nil
		}
	}
	n := min(na, nb)
	for i := na - 1; i >= n; i-- {
		if err := at(i, func() error { return d.op("remove", reflect.Value{}) }); err != nil {
			return err
		}
	}
	for i := n; i < nb; i++ {
		if err := at(i, func() error { return d.op("add", b.Index(i)) }); err != nil {
			return err
		}
	}
	for i := 0; i < n; i++ {
		if err := at(i, func() error { return d.value(a.Index(i), b.Index(i)) }); err != nil {
			return err
		}
	}
	return nil
}

// escape encodes a member name as a JSON Pointer token (RFC 6901).
func escape(s string) string { return tokenEscaper.Replace(s) }

var tokenEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// field is one member of a struct's JSON object.
type field struct {
	index    []int // through embedded structs
	token    string
	omitType int // omitNever, omitEmpty or omitZero
}

const (
	omitNever = iota
	omitEmpty
	omitZero
)

// get returns the field's value; false when it sits behind a nil embedded pointer (absent).
func (f field) get(v reflect.Value) (reflect.Value, bool) {
	for i, x := range f.index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}

// present reports whether encoding/json writes the field.
func (f field) present(v reflect.Value) bool {
	switch f.omitType {
	case omitEmpty:
		switch v.Kind() {
		case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
			return v.Len() != 0
		case reflect.Bool:
			return v.Bool()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return v.Int() != 0
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			return v.Uint() != 0
		case reflect.Float32, reflect.Float64:
			return v.Float() != 0
		case reflect.Interface, reflect.Pointer:
			return !v.IsNil()
		}
	case omitZero:
		if z, ok := v.Interface().(interface{ IsZero() bool }); ok {
			return !(v.Kind() == reflect.Pointer && v.IsNil()) && !z.IsZero()
		}
		return !v.IsZero()
	}
	return true
}

// typeInfo is what the walk needs to know about a type, computed once per type.
type typeInfo struct {
	// opaque: values are compared and replaced as a whole, because they encode themselves
	// (json.Marshaler, encoding.TextMarshaler) or, for structs, have a field with the ",string"
	// option or an unexported embedded struct, which this package does not reproduce.
	opaque bool
	// fields of a struct, in encoding order.
	fields []field
}

var infoCache sync.Map // reflect.Type → *typeInfo

func infoOf(t reflect.Type) *typeInfo {
	if s, ok := infoCache.Load(t); ok {
		return s.(*typeInfo)
	}
	s := &typeInfo{opaque: encodesItself(t)}
	if !s.opaque && t.Kind() == reflect.Struct {
		s.collect(t, nil)
	}
	got, _ := infoCache.LoadOrStore(t, s)
	return got.(*typeInfo)
}

// collect adds t's exported fields, promoting those of embedded structs without a JSON name as
// encoding/json does (the Kubernetes types' `json:",inline"`). Name conflicts between embedded
// structs, which encoding/json resolves by depth, do not occur in those types and are not handled.
func (s *typeInfo) collect(t reflect.Type, index []int) {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		idx := append(slices.Clone(index), i)
		if sf.Anonymous && name == "" {
			ft := sf.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && !encodesItself(sf.Type) {
				if !sf.IsExported() {
					s.opaque = true
					return
				}
				s.collect(ft, idx)
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		f := field{index: idx, token: escape(name)}
		for o := range strings.SplitSeq(opts, ",") {
			switch o {
			case "omitempty":
				f.omitType = omitEmpty
			case "omitzero":
				f.omitType = omitZero
			case "string":
				s.opaque = true
			}
		}
		s.fields = append(s.fields, f)
	}
}
