package inject

import (
	"errors"
	"fmt"
	"strings"
)

// Problem is one reason a pod that opted in cannot be protected. Key is the annotation (or pod
// field) at fault, so the message tells the user exactly what to change.
type Problem struct {
	// Key is an annotation key, or a pod field path such as "spec.hostNetwork".
	Key string
	// Source says where the value came from: "pod", "namespace" or "injector config"; empty when
	// the value is missing everywhere.
	Source string
	// Value is the offending value; empty when the problem is a missing value.
	Value string
	// Msg says what is wrong or expected.
	Msg string
}

func (p Problem) Error() string {
	var b strings.Builder
	if strings.HasPrefix(p.Key, Prefix) {
		b.WriteString("annotation ")
	}
	fmt.Fprintf(&b, "%q", p.Key)
	if p.Source != "" && p.Source != "pod" {
		b.WriteString(" (from the " + p.Source + ")")
	}
	b.WriteString(": ")
	if p.Value != "" {
		fmt.Fprintf(&b, "value %q ", p.Value)
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem found in one pod, so one round of fixes suffices. The webhook denies
// the pod with its text: an opted-in pod that cannot be protected must not start unprotected.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "podgate cannot protect this pod (%d problem", len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteString("s")
	}
	b.WriteString("):")
	for _, p := range e.Problems {
		b.WriteString("\n- " + p.Error())
	}
	return b.String()
}

// AsError returns err's *Error, if it is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

type problems []Problem

func (ps *problems) add(key, source, value, format string, a ...any) {
	*ps = append(*ps, Problem{Key: key, Source: source, Value: value, Msg: fmt.Sprintf(format, a...)})
}

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &Error{Problems: ps}
}
