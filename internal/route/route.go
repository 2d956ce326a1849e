// Package route is routing by identity: ordered rules "MATCH => UPSTREAM" that pick, for an
// authenticated caller, the upstream their request goes to (one IDE per developer behind one URL, a
// team's app for the team). The first rule whose conditions all hold wins. An upstream may be a
// template whose host labels are filled from the caller's claims, under a mapping that either keeps
// a value's meaning or refuses it, so no claim can point a request anywhere but the one label it fills.
package route

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/podgate/podgate/internal/auth"
)

// Arrow separates a rule's match from its upstream.
const Arrow = "=>"

// Kind is what a condition compares: the same claims as the identity headers carry.
type Kind string

// Condition kinds, the KEY of "KEY=VALUE".
const (
	// KindUser compares the user (--user-claim, else sub; X-Auth-Request-User), exactly.
	KindUser Kind = "user"
	// KindGroup compares a group, ignoring a leading "/" on both sides (as --allowed-group does).
	KindGroup Kind = "group"
	// KindRole compares a realm role "ROLE" or a client role "CLIENT:ROLE" (as --allowed-role does).
	KindRole Kind = "role"
	// KindEmail compares the verified email, ignoring case (an unverified address is whatever the
	// user typed, so it never matches).
	KindEmail Kind = "email"
)

var kinds = []Kind{KindUser, KindGroup, KindRole, KindEmail}

// Condition is one KEY=VALUE of a match.
type Condition struct {
	Kind  Kind
	Value string
}

// Rule is one --route: Match its conditions (all must hold; none means "*", everyone) and Upstream
// where matching requests go. A rule's number (metrics, logs) is its position among the rules,
// counting from 1.
type Rule struct {
	Match    []Condition
	Upstream Template
	text     string
}

// String returns the rule as it was given, so it renders back into the same --route argument.
func (r Rule) String() string { return r.text }

// Matches reports whether every condition of r holds for id.
func (r Rule) Matches(id *auth.Identity) bool {
	for _, c := range r.Match {
		if !c.holds(id) {
			return false
		}
	}
	return true
}

func (c Condition) holds(id *auth.Identity) bool {
	switch c.Kind {
	case KindUser:
		return id.User != "" && id.User == c.Value
	case KindGroup:
		want := strings.TrimPrefix(c.Value, "/")
		return slices.ContainsFunc(id.Groups, func(g string) bool { return strings.TrimPrefix(g, "/") == want })
	case KindRole:
		return slices.Contains(id.Roles, c.Value)
	case KindEmail:
		return id.EmailVerified && strings.EqualFold(id.Email, c.Value)
	}
	return false
}

// Errors of Parse and Compile, each wrapped in a *RuleError that names the rule. Callers tell
// them apart with errors.Is.
var (
	ErrNoArrow            = errors.New("is not MATCH " + Arrow + " UPSTREAM")
	ErrTwoArrows          = errors.New("has more than one " + Arrow)
	ErrEmptyMatch         = errors.New("has an empty MATCH (use * to match everyone)")
	ErrStarCombined       = errors.New("combines * with conditions (* alone matches everyone)")
	ErrEmptyCondition     = errors.New("has an empty condition (two commas, or a comma at an end)")
	ErrNotKeyValue        = errors.New("has a condition that is not KEY=VALUE")
	ErrUnknownKey         = errors.New("has an unknown key (want user, group, role or email)")
	ErrEmptyValue         = errors.New("has a condition with an empty value")
	ErrBadRole            = errors.New("has a role that is not ROLE or CLIENT:ROLE")
	ErrBadEmail           = errors.New("has an email that is not an address")
	ErrEmptyUpstream      = errors.New("has an empty UPSTREAM")
	ErrBadUpstream        = errors.New("has an UPSTREAM that is not an absolute http(s) URL with a host")
	ErrUpstreamExtras     = errors.New("has an UPSTREAM with user info, a query or a fragment")
	ErrBadPlaceholder     = errors.New("has an unknown placeholder (want {user}, {preferred_username} or {sub})")
	ErrUnbalancedBrace    = errors.New("has an unbalanced { or }")
	ErrPlaceholderOutside = errors.New("has a placeholder outside the host name (claims may fill host labels only)")
	ErrBadTemplateLabel   = errors.New("has a templated host label with characters a DNS label cannot hold")
	ErrUnreachable        = errors.New("can never match: an earlier rule matches everyone")
)

// RuleError is a malformed rule: which one (as given, and its position from 1 when known) and what
// is wrong.
type RuleError struct {
	Position int
	Rule     string
	Err      error
	Detail   string
}

func (e *RuleError) Error() string {
	s := fmt.Sprintf("rule %q %v", e.Rule, e.Err)
	if e.Position > 0 {
		s = fmt.Sprintf("rule %d %q %v", e.Position, e.Rule, e.Err)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *RuleError) Unwrap() error { return e.Err }

// Parse parses one rule, "MATCH => UPSTREAM". MATCH is "*" or KEY=VALUE conditions joined by ",",
// KEY one of user, group, role, email; blanks around the arrow, commas and "=" are ignored.
func Parse(s string) (Rule, error) {
	fail := func(err error, detail string, a ...any) (Rule, error) {
		return Rule{}, &RuleError{Rule: s, Err: err, Detail: fmt.Sprintf(detail, a...)}
	}
	match, upstream, ok := strings.Cut(s, Arrow)
	if !ok {
		return fail(ErrNoArrow, "")
	}
	if strings.Contains(upstream, Arrow) {
		return fail(ErrTwoArrows, "")
	}
	match, upstream = strings.TrimSpace(match), strings.TrimSpace(upstream)
	r := Rule{text: s}
	switch match {
	case "":
		return fail(ErrEmptyMatch, "")
	case "*":
	default:
		for _, part := range strings.Split(match, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				return fail(ErrEmptyCondition, "")
			}
			if part == "*" {
				return fail(ErrStarCombined, "")
			}
			key, value, ok := strings.Cut(part, "=")
			if !ok {
				return fail(ErrNotKeyValue, "%q", part)
			}
			kind, value := Kind(strings.TrimSpace(key)), strings.TrimSpace(value)
			if !slices.Contains(kinds, kind) {
				return fail(ErrUnknownKey, "%q", key)
			}
			if value == "" || (kind == KindGroup && strings.Trim(value, "/") == "") {
				return fail(ErrEmptyValue, "%q", part)
			}
			if kind == KindRole && (strings.Count(value, ":") > 1 || strings.HasPrefix(value, ":") || strings.HasSuffix(value, ":")) {
				return fail(ErrBadRole, "%q", value)
			}
			if kind == KindEmail && (strings.Count(value, "@") != 1 || strings.HasPrefix(value, "@") || strings.HasSuffix(value, "@")) {
				return fail(ErrBadEmail, "%q", value)
			}
			r.Match = append(r.Match, Condition{Kind: kind, Value: value})
		}
	}
	if upstream == "" {
		return fail(ErrEmptyUpstream, "")
	}
	t, err := parseTemplate(upstream)
	if err != nil {
		var te *templateError
		if errors.As(err, &te) {
			return fail(te.err, "%s", te.detail)
		}
		return fail(err, "")
	}
	r.Upstream = t
	return r, nil
}

// CheckOrder reports rules no request can ever reach: every rule after one that matches everyone.
func CheckOrder(rules []Rule) error {
	var errs []error
	for i, r := range rules {
		if len(r.Match) == 0 {
			for j, later := range rules[i+1:] {
				errs = append(errs, &RuleError{Position: i + 2 + j, Rule: later.text, Err: ErrUnreachable,
					Detail: "rule " + strconv.Itoa(i+1) + " is *"})
			}
			break
		}
	}
	return errors.Join(errs...)
}

// Pick returns the position (from 1) of the first rule matching id, or 0 when none does.
func Pick(rules []Rule, id *auth.Identity) int {
	for i, r := range rules {
		if r.Matches(id) {
			return i + 1
		}
	}
	return 0
}
