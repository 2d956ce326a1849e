package route

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/podgate/podgate/internal/auth"
)

// Placeholder names a claim an upstream template may use: {user}, {preferred_username}, {sub}.
type Placeholder string

// The placeholders.
const (
	PlaceholderUser              Placeholder = "user"
	PlaceholderPreferredUsername Placeholder = "preferred_username"
	PlaceholderSub               Placeholder = "sub"
)

func (p Placeholder) value(id *auth.Identity) string {
	switch p {
	case PlaceholderUser:
		return id.User
	case PlaceholderPreferredUsername:
		return id.PreferredUsername
	case PlaceholderSub:
		return id.Subject
	}
	return ""
}

// maxLabel is a DNS label's length limit (RFC 1035), maxHost a name's.
const (
	maxLabel = 63
	maxHost  = 253
)

// piece is a part of a templated host label: literal text, or a placeholder when ph is set.
type piece struct {
	lit string
	ph  Placeholder
}

// Template is an upstream URL whose host labels may hold placeholders. Only the host can hold
// them: scheme, port and path are fixed when the rule is parsed.
type Template struct {
	// fixed is the upstream of a template without placeholders, returned as is.
	fixed *url.URL
	// For a template with placeholders: the URL without its host, and the host's labels.
	base   url.URL
	port   string
	labels [][]piece
}

// Templated reports whether the upstream depends on the caller.
func (t Template) Templated() bool { return t.fixed == nil }

// String is the template as written (placeholders in braces).
func (t Template) String() string {
	if t.fixed != nil {
		return t.fixed.String()
	}
	var host strings.Builder
	for i, l := range t.labels {
		if i > 0 {
			host.WriteByte('.')
		}
		for _, p := range l {
			if p.ph != "" {
				host.WriteString("{" + string(p.ph) + "}")
			} else {
				host.WriteString(p.lit)
			}
		}
	}
	if t.port != "" {
		host.WriteString(":" + t.port)
	}
	u := t.base
	u.Host = "HOST"
	return strings.Replace(u.String(), "HOST", host.String(), 1)
}

// Refusal says why a claim value cannot fill a host label.
type Refusal string

// Refusals.
const (
	RefusedEmpty      Refusal = "empty"
	RefusedTooLong    Refusal = "longer than 63 characters"
	RefusedCharacter  Refusal = "holds a character other than a-z, A-Z, 0-9 and '-'"
	RefusedLabelEdge  Refusal = "makes the label start or end with '-'"
	RefusedLabelLong  Refusal = "makes the label longer than 63 characters"
	RefusedHostLength Refusal = "makes the host name longer than 253 characters"
)

// RefusedError is a claim value that cannot fill its host label. It is the caller's answer (403),
// never a configuration problem.
type RefusedError struct {
	Placeholder Placeholder
	Value       string
	Reason      Refusal
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("claim {%s} %s", e.Placeholder, e.Reason)
}

// Resolve fills the template from id. The mapping from a claim value to a label is lossless or
// refused: a value is accepted only when it is already a DNS label's worth of ASCII letters, digits
// and '-', and is lower-cased (DNS names are case-insensitive, so "Carol" and "carol" name the same
// host either way); anything else (a dot, '@', ':', '/', '%', a space, any non-ASCII character, an
// empty or over-long value) is refused, never escaped, stripped or transliterated, so two different
// callers can only share an upstream when their values differ in case alone.
func (t Template) Resolve(id *auth.Identity) (*url.URL, error) {
	if t.fixed != nil {
		return t.fixed, nil
	}
	var host strings.Builder
	for i, l := range t.labels {
		if i > 0 {
			host.WriteByte('.')
		}
		start := host.Len()
		var last Placeholder
		for _, p := range l {
			if p.ph == "" {
				host.WriteString(p.lit)
				continue
			}
			last = p.ph
			v := p.ph.value(id)
			if err := checkValue(v); err != "" {
				return nil, &RefusedError{Placeholder: p.ph, Value: v, Reason: err}
			}
			// Lower-casing byte by byte: the value is ASCII by now. strings.ToLower would also map
			// the Kelvin sign (U+212A) to 'k', which is why non-ASCII is refused before this.
			for j := 0; j < len(v); j++ {
				c := v[j]
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				host.WriteByte(c)
			}
		}
		label := host.String()[start:]
		if last == "" {
			continue
		}
		if len(label) > maxLabel {
			return nil, &RefusedError{Placeholder: last, Value: last.value(id), Reason: RefusedLabelLong}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return nil, &RefusedError{Placeholder: last, Value: last.value(id), Reason: RefusedLabelEdge}
		}
	}
	if host.Len() > maxHost {
		return nil, &RefusedError{Placeholder: t.lastPlaceholder(), Reason: RefusedHostLength}
	}
	u := t.base
	u.Host = host.String()
	if t.port != "" {
		u.Host += ":" + t.port
	}
	return &u, nil
}

func (t Template) lastPlaceholder() Placeholder {
	var last Placeholder
	for _, l := range t.labels {
		for _, p := range l {
			if p.ph != "" {
				last = p.ph
			}
		}
	}
	return last
}

// checkValue accepts 1-63 ASCII letters, digits and '-'. Every other byte is refused: '.' would add a
// label, ':' a port, '/', '?', '#' and '@' would end the host or start user info, '%' could be
// decoded into any of those later, and non-ASCII has no lossless DNS form (IDNA folds and maps).
func checkValue(v string) Refusal {
	if v == "" {
		return RefusedEmpty
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return RefusedCharacter
		}
	}
	if len(v) > maxLabel {
		return RefusedTooLong
	}
	return ""
}

// templateError carries a rule's template problem to Parse, which names the rule.
type templateError struct {
	err    error
	detail string
}

func (e *templateError) Error() string { return e.err.Error() + ": " + e.detail }

// marker stands for the i-th placeholder while the template is parsed as a URL: url.Parse refuses
// braces in a host. It is a valid label fragment that a written template is checked not to contain.
func marker(i int) string { return fmt.Sprintf("podgateplaceholder%dx", i) }

const markerPrefix = "podgateplaceholder"

// parseTemplate parses an upstream: an absolute http(s) URL with a host, optionally with
// placeholders in host labels.
func parseTemplate(s string) (Template, error) {
	bad := func(err error, format string, a ...any) (Template, error) {
		return Template{}, &templateError{err: err, detail: fmt.Sprintf(format, a...)}
	}
	// Replace each {name} with a marker, remembering which placeholder it was.
	var probe strings.Builder
	var phs []Placeholder
	for rest := s; rest != ""; {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			probe.WriteString(rest)
			break
		}
		if rest[i] == '}' {
			return bad(ErrUnbalancedBrace, "%q", s)
		}
		end := strings.IndexAny(rest[i+1:], "{}")
		if end < 0 || rest[i+1+end] == '{' {
			return bad(ErrUnbalancedBrace, "%q", s)
		}
		name := Placeholder(rest[i+1 : i+1+end])
		switch name {
		case PlaceholderUser, PlaceholderPreferredUsername, PlaceholderSub:
		default:
			return bad(ErrBadPlaceholder, "{%s}", name)
		}
		probe.WriteString(rest[:i])
		probe.WriteString(marker(len(phs)))
		phs = append(phs, name)
		rest = rest[i+1+end+1:]
	}
	if strings.Contains(strings.ToLower(s), markerPrefix) {
		return bad(ErrBadUpstream, "%q", s)
	}
	u, err := url.Parse(probe.String())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return bad(ErrBadUpstream, "%q", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return bad(ErrUpstreamExtras, "%q", s)
	}
	if len(phs) == 0 {
		return Template{fixed: u}, nil
	}
	hostname, port := u.Hostname(), u.Port()
	// Every marker must sit in the host name: none in the port, the path, or anywhere else.
	outside := strings.Replace(u.String(), hostname, "", 1)
	if strings.Contains(outside, markerPrefix) || strings.Contains(port, markerPrefix) {
		return bad(ErrPlaceholderOutside, "%q", s)
	}
	t := Template{base: *u, port: port}
	t.base.Host = ""
	labels := strings.Split(hostname, ".")
	for li, label := range labels {
		if label == "" {
			return bad(ErrBadTemplateLabel, "%q has an empty label", hostname)
		}
		var pieces []piece
		for rest := label; rest != ""; {
			i := strings.Index(rest, markerPrefix)
			if i < 0 {
				pieces = append(pieces, piece{lit: strings.ToLower(rest)})
				break
			}
			if i > 0 {
				pieces = append(pieces, piece{lit: strings.ToLower(rest[:i])})
			}
			var n int
			if _, err := fmt.Sscanf(rest[i:], markerPrefix+"%dx", &n); err != nil || n >= len(phs) {
				return bad(ErrBadUpstream, "%q", s)
			}
			pieces = append(pieces, piece{ph: phs[n]})
			rest = rest[i+len(marker(n)):]
		}
		templated := false
		for _, p := range pieces {
			if p.ph != "" {
				templated = true
			} else if checkValue(p.lit) != "" {
				return bad(ErrBadTemplateLabel, "%q", label)
			}
		}
		// A claim never fills the last label: with a fixed, non-numeric last label the host can
		// never read as an IP address ("2130706433" or "0x7f000001" are 127.0.0.1 to inet_aton).
		if li == len(labels)-1 && (templated || strings.Trim(label, "0123456789") == "") {
			return bad(ErrPlaceholderOutside, "%q: the last host label must be fixed and not numeric", s)
		}
		t.labels = append(t.labels, pieces)
	}
	return t, nil
}
