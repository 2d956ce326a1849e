package jsonpatch

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
)

// stamp encodes itself (a pointer-receiver MarshalJSON), so it is replaced as a whole.
type stamp struct{ t time.Time }

func (s *stamp) MarshalJSON() ([]byte, error) { return json.Marshal(s.t.Unix()) }

type Meta struct {
	Name   string            `json:"name,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

type inner struct {
	A string `json:"a"`
	B []int  `json:"b,omitempty"`
}

type doc struct {
	Meta     `json:",inline"`
	Kind     string            `json:"kind"`
	Count    int               `json:"count,omitempty"`
	On       bool              `json:"on,omitempty"`
	Ratio    float64           `json:"ratio,omitempty"`
	Ptr      *inner            `json:"ptr,omitempty"`
	NullPtr  *inner            `json:"nullPtr"`
	Items    []inner           `json:"items,omitempty"`
	Nulls    []string          `json:"nulls"`
	Raw      []byte            `json:"raw,omitempty"`
	Map      map[string]inner  `json:"map,omitempty"`
	NullMap  map[string]string `json:"nullMap"`
	IntKeys  map[int]string    `json:"intKeys,omitempty"`
	Any      any               `json:"any,omitempty"`
	Zero     inner             `json:"zero,omitzero"`
	When     stamp             `json:"when"`
	Fixed    [2]string         `json:"fixed"`
	Skipped  string            `json:"-"`
	NoTag    string
	Quoted   quoted          `json:"quoted"`
	RawJSON  json.RawMessage `json:"rawJSON,omitempty"`
	unexport string
}

// quoted has a ",string" field: compared and replaced as a whole.
type quoted struct {
	N int `json:"n,string"`
}

// check applies Diff's patch to before's encoding and requires after's encoding.
func check(t testing.TB, before, after any) []byte {
	t.Helper()
	a, err := json.Marshal(before)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(after)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := Diff(before, after)
	if err != nil {
		t.Fatal(err)
	}
	if patch == nil {
		if !jsonpatch.Equal(a, b) {
			t.Fatalf("no patch, but the documents differ:\n%s\n%s", a, b)
		}
		return nil
	}
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatalf("invalid patch %s: %v", patch, err)
	}
	got, err := p.Apply(a)
	if err != nil {
		t.Fatalf("patch %s does not apply to %s: %v", patch, a, err)
	}
	if !jsonpatch.Equal(got, b) {
		t.Fatalf("patch %s turns\n%s into\n%s, want\n%s", patch, a, got, b)
	}
	return patch
}

func base() *doc {
	return &doc{
		Meta: Meta{Name: "n", Labels: map[string]string{"a/b": "1", "c~d": "2"}},
		Kind: "k", Count: 1, Ptr: &inner{A: "x", B: []int{1, 2}},
		Items: []inner{{A: "i0"}, {A: "i1", B: []int{1}}, {A: "i2"}},
		Map:   map[string]inner{"m": {A: "v"}}, IntKeys: map[int]string{1: "one"},
		Any: map[string]any{"x": 1.0}, When: stamp{time.Unix(5, 0)}, Fixed: [2]string{"f", "g"},
		Quoted: quoted{N: 1}, RawJSON: json.RawMessage(`{"r":1}`),
	}
}

func TestDiff(t *testing.T) {
	cases := map[string]func(d *doc){
		"nothing":                func(d *doc) {},
		"inline field":           func(d *doc) { d.Name = "other" },
		"inline field removed":   func(d *doc) { d.Name = "" },
		"label added with slash": func(d *doc) { d.Labels["x/y~z"] = "3" },
		"label removed":          func(d *doc) { delete(d.Labels, "a/b") },
		"labels gone":            func(d *doc) { d.Labels = nil },
		"labels empty":           func(d *doc) { d.Labels = map[string]string{} },
		"string":                 func(d *doc) { d.Kind = "other" },
		"omitempty to zero":      func(d *doc) { d.Count = 0 },
		"bool and float":         func(d *doc) { d.On, d.Ratio = true, 0.5 },
		"pointer field":          func(d *doc) { d.Ptr.A = "y" },
		"pointer removed":        func(d *doc) { d.Ptr = nil },
		"null pointer set":       func(d *doc) { d.NullPtr = &inner{A: "p"} },
		"element changed":        func(d *doc) { d.Items[1].B = append(d.Items[1].B, 2) },
		"element inserted first": func(d *doc) { d.Items = append([]inner{{A: "new"}}, d.Items...) },
		"element inserted middle": func(d *doc) {
			d.Items = append(d.Items[:1:1], append([]inner{{A: "n1"}, {A: "n2"}}, d.Items[1:]...)...)
		},
		"element appended":        func(d *doc) { d.Items = append(d.Items, inner{A: "last"}) },
		"element removed first":   func(d *doc) { d.Items = d.Items[1:] },
		"elements removed middle": func(d *doc) { d.Items = append(d.Items[:1:1], d.Items[2:]...) },
		"inserted and changed": func(d *doc) {
			d.Items = append([]inner{{A: "new"}}, d.Items...)
			d.Items[2].A = "changed"
		},
		"all replaced shorter": func(d *doc) { d.Items = []inner{{A: "z"}} },
		"items emptied":        func(d *doc) { d.Items = []inner{} },
		"null slice set":       func(d *doc) { d.Nulls = []string{"a"} },
		"bytes":                func(d *doc) { d.Raw = []byte("hello") },
		"map value field":      func(d *doc) { d.Map["m"] = inner{A: "w"} },
		"map key added":        func(d *doc) { d.Map["n"] = inner{A: "w"} },
		"null map set":         func(d *doc) { d.NullMap = map[string]string{} },
		"int keys":             func(d *doc) { d.IntKeys[2] = "two" },
		"interface":            func(d *doc) { d.Any = []any{"x"} },
		"omitzero set":         func(d *doc) { d.Zero.A = "z" },
		"marshaler":            func(d *doc) { d.When = stamp{time.Unix(6, 0)} },
		"array":                func(d *doc) { d.Fixed[1] = "h" },
		"ignored fields":       func(d *doc) { d.Skipped, d.unexport = "s", "u" },
		"untagged field":       func(d *doc) { d.NoTag = "t" },
		"string option":        func(d *doc) { d.Quoted.N = 2 },
		"raw message":          func(d *doc) { d.RawJSON = json.RawMessage(`[1]`) },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			after := base()
			mutate(after)
			patch := check(t, base(), after)
			if name == "nothing" || name == "ignored fields" {
				if patch != nil {
					t.Fatalf("patch for no change: %s", patch)
				}
			} else if patch == nil {
				t.Fatal("no patch for a change")
			}
		})
	}
}

// TestDiffKeepsNeighbours: an element inserted before others is one add, so the API server's copy
// of the elements around it (which may hold fields this build does not know) is left alone.
func TestDiffKeepsNeighbours(t *testing.T) {
	before := base()
	after := base()
	after.Items = append([]inner{{A: "new"}}, after.Items...)
	patch := check(t, before, after)
	if want := `[{"op":"add","path":"/items/0","value":{"a":"new"}}]`; string(patch) != want {
		t.Fatalf("patch %s, want %s", patch, want)
	}
	// Unknown fields of the neighbours survive.
	p, _ := jsonpatch.DecodePatch(patch)
	orig, _ := json.Marshal(before)
	orig = bytes.Replace(orig, []byte(`{"a":"i0"`), []byte(`{"future":true,"a":"i0"`), 1)
	got, err := p.Apply(orig)
	if err != nil || !strings.Contains(string(got), `"future":true,"a":"i0"`) {
		t.Fatalf("neighbour lost its unknown field: %s (%v)", got, err)
	}
}

func TestDiffRejectsMismatchedArguments(t *testing.T) {
	for _, args := range [][2]any{{doc{}, doc{}}, {&doc{}, &inner{}}, {(*doc)(nil), &doc{}}} {
		if _, err := Diff(args[0], args[1]); err == nil {
			t.Errorf("Diff(%T, %T): no error", args[0], args[1])
		}
	}
}

// FuzzDiff: for any two documents of one type, the patch turns the first into the second.
func FuzzDiff(f *testing.F) {
	a, _ := json.Marshal(base())
	b := base()
	b.Items = append([]inner{{A: "new"}}, b.Items[1:]...)
	bj, _ := json.Marshal(b)
	f.Add(a, bj)
	f.Add([]byte(`{"items":[{"a":"1"},{"a":"2"}]}`), []byte(`{"items":[{"a":"2"}],"labels":{"/":"~"}}`))
	f.Fuzz(func(t *testing.T, x, y []byte) {
		var before, after doc
		if json.Unmarshal(x, &before) != nil || json.Unmarshal(y, &after) != nil {
			return
		}
		check(t, &before, &after)
	})
}
