package route

import (
	"errors"
	"strings"
	"testing"

	"github.com/podgate/podgate/internal/auth"
)

func TestParseValid(t *testing.T) {
	for _, tc := range []struct {
		rule     string
		match    []Condition
		upstream string
		tmpl     bool
	}{
		{"* => http://default.apps.svc", nil, "http://default.apps.svc", false},
		{"group=/team-a => http://team-a.apps.svc:8080", []Condition{{KindGroup, "/team-a"}}, "http://team-a.apps.svc:8080", false},
		{"role=admin => http://admin.apps.svc", []Condition{{KindRole, "admin"}}, "http://admin.apps.svc", false},
		{"role=ide:user=>http://x.apps.svc", []Condition{{KindRole, "ide:user"}}, "http://x.apps.svc", false},
		{"user=carol => http://carol-ide.ide.svc:8080", []Condition{{KindUser, "carol"}}, "http://carol-ide.ide.svc:8080", false},
		{" user = carol , email = carol@example.com , group=Team A =>  https://c.ide.svc/base ",
			[]Condition{{KindUser, "carol"}, {KindEmail, "carol@example.com"}, {KindGroup, "Team A"}}, "https://c.ide.svc/base", false},
		{"* => http://code-server-{user}.ide.svc:8080", nil, "http://code-server-{user}.ide.svc:8080", true},
		{"* => http://{sub}.{preferred_username}.ide.svc/x/", nil, "http://{sub}.{preferred_username}.ide.svc/x/", true},
		{"* => http://IDE-{user}.Ide.svc", nil, "http://ide-{user}.ide.svc", true},
	} {
		r, err := Parse(tc.rule)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.rule, err)
			continue
		}
		if r.String() != tc.rule {
			t.Errorf("Parse(%q): String %q", tc.rule, r.String())
		}
		if len(r.Match) != len(tc.match) {
			t.Errorf("Parse(%q): match %v, want %v", tc.rule, r.Match, tc.match)
		} else {
			for i := range r.Match {
				if r.Match[i] != tc.match[i] {
					t.Errorf("Parse(%q): condition %d = %v, want %v", tc.rule, i, r.Match[i], tc.match[i])
				}
			}
		}
		if got := r.Upstream.String(); got != tc.upstream || r.Upstream.Templated() != tc.tmpl {
			t.Errorf("Parse(%q): upstream %q (templated %v), want %q (%v)", tc.rule, got, r.Upstream.Templated(), tc.upstream, tc.tmpl)
		}
	}
}

// Every malformed form, with the message an operator reads at start-up.
func TestParseMalformed(t *testing.T) {
	for _, tc := range []struct {
		rule string
		err  error
		msg  string
	}{
		{"user=carol http://c.svc", ErrNoArrow, `rule "user=carol http://c.svc" is not MATCH => UPSTREAM`},
		{"user=carol => http://c.svc => http://d.svc", ErrTwoArrows, `rule "user=carol => http://c.svc => http://d.svc" has more than one =>`},
		{" => http://c.svc", ErrEmptyMatch, `rule " => http://c.svc" has an empty MATCH (use * to match everyone)`},
		{"*,user=carol => http://c.svc", ErrStarCombined, `rule "*,user=carol => http://c.svc" combines * with conditions (* alone matches everyone)`},
		{"user=carol,,group=a => http://c.svc", ErrEmptyCondition, `rule "user=carol,,group=a => http://c.svc" has an empty condition (two commas, or a comma at an end)`},
		{"user=carol, => http://c.svc", ErrEmptyCondition, `rule "user=carol, => http://c.svc" has an empty condition (two commas, or a comma at an end)`},
		{"carol => http://c.svc", ErrNotKeyValue, `rule "carol => http://c.svc" has a condition that is not KEY=VALUE: "carol"`},
		{"name=carol => http://c.svc", ErrUnknownKey, `rule "name=carol => http://c.svc" has an unknown key (want user, group, role or email): "name"`},
		{"User=carol => http://c.svc", ErrUnknownKey, `rule "User=carol => http://c.svc" has an unknown key (want user, group, role or email): "User"`},
		{"user= => http://c.svc", ErrEmptyValue, `rule "user= => http://c.svc" has a condition with an empty value: "user="`},
		{"group=/ => http://c.svc", ErrEmptyValue, `rule "group=/ => http://c.svc" has a condition with an empty value: "group=/"`},
		{"role=a:b:c => http://c.svc", ErrBadRole, `rule "role=a:b:c => http://c.svc" has a role that is not ROLE or CLIENT:ROLE: "a:b:c"`},
		{"role=:admin => http://c.svc", ErrBadRole, `rule "role=:admin => http://c.svc" has a role that is not ROLE or CLIENT:ROLE: ":admin"`},
		{"email=carol => http://c.svc", ErrBadEmail, `rule "email=carol => http://c.svc" has an email that is not an address: "carol"`},
		{"user=carol =>  ", ErrEmptyUpstream, `rule "user=carol =>  " has an empty UPSTREAM`},
		{"user=carol => c.svc:8080", ErrBadUpstream, `rule "user=carol => c.svc:8080" has an UPSTREAM that is not an absolute http(s) URL with a host: "c.svc:8080"`},
		{"user=carol => ftp://c.svc", ErrBadUpstream, `rule "user=carol => ftp://c.svc" has an UPSTREAM that is not an absolute http(s) URL with a host: "ftp://c.svc"`},
		{"user=carol => http:///path", ErrBadUpstream, `rule "user=carol => http:///path" has an UPSTREAM that is not an absolute http(s) URL with a host: "http:///path"`},
		{"user=carol => http://u:p@c.svc", ErrUpstreamExtras, `rule "user=carol => http://u:p@c.svc" has an UPSTREAM with user info, a query or a fragment: "http://u:p@c.svc"`},
		{"user=carol => http://c.svc/?a=b", ErrUpstreamExtras, `rule "user=carol => http://c.svc/?a=b" has an UPSTREAM with user info, a query or a fragment: "http://c.svc/?a=b"`},
		{"* => http://{email}.ide.svc", ErrBadPlaceholder, `rule "* => http://{email}.ide.svc" has an unknown placeholder (want {user}, {preferred_username} or {sub}): {email}`},
		{"* => http://{User}.ide.svc", ErrBadPlaceholder, `rule "* => http://{User}.ide.svc" has an unknown placeholder (want {user}, {preferred_username} or {sub}): {User}`},
		{"* => http://{user.ide.svc", ErrUnbalancedBrace, `rule "* => http://{user.ide.svc" has an unbalanced { or }: "http://{user.ide.svc"`},
		{"* => http://user}.ide.svc", ErrUnbalancedBrace, `rule "* => http://user}.ide.svc" has an unbalanced { or }: "http://user}.ide.svc"`},
		{"* => http://{{user}}.ide.svc", ErrUnbalancedBrace, `rule "* => http://{{user}}.ide.svc" has an unbalanced { or }: "http://{{user}}.ide.svc"`},
		{"* => http://ide.svc/{user}", ErrPlaceholderOutside, `rule "* => http://ide.svc/{user}" has a placeholder outside the host name (claims may fill host labels only): "http://ide.svc/{user}"`},
		{"* => http://ide.svc:{user}", ErrBadUpstream, `rule "* => http://ide.svc:{user}" has an UPSTREAM that is not an absolute http(s) URL with a host: "http://ide.svc:{user}"`},
		{"* => http://ide.{user}", ErrPlaceholderOutside, `rule "* => http://ide.{user}" has a placeholder outside the host name (claims may fill host labels only): "http://ide.{user}": the last host label must be fixed and not numeric`},
		{"* => http://{user}:8080", ErrPlaceholderOutside, `rule "* => http://{user}:8080" has a placeholder outside the host name (claims may fill host labels only): "http://{user}:8080": the last host label must be fixed and not numeric`},
		{"* => http://{user}.10", ErrPlaceholderOutside, `rule "* => http://{user}.10" has a placeholder outside the host name (claims may fill host labels only): "http://{user}.10": the last host label must be fixed and not numeric`},
		{"* => http://ide_{user}.svc", ErrBadTemplateLabel, `rule "* => http://ide_{user}.svc" has a templated host label with characters a DNS label cannot hold: "ide_podgateplaceholder0x"`},
		{"* => http://{user}..svc", ErrBadTemplateLabel, `rule "* => http://{user}..svc" has a templated host label with characters a DNS label cannot hold: "podgateplaceholder0x..svc" has an empty label`},
		{"* => http://podgateplaceholder0x.svc", ErrBadUpstream, `rule "* => http://podgateplaceholder0x.svc" has an UPSTREAM that is not an absolute http(s) URL with a host: "http://podgateplaceholder0x.svc"`},
	} {
		_, err := Parse(tc.rule)
		if !errors.Is(err, tc.err) {
			t.Errorf("Parse(%q) = %v, want %v", tc.rule, err, tc.err)
			continue
		}
		var re *RuleError
		if !errors.As(err, &re) || re.Rule != tc.rule {
			t.Errorf("Parse(%q): error %T does not name the rule", tc.rule, err)
		}
		if err.Error() != tc.msg {
			t.Errorf("Parse(%q) message\n got %s\nwant %s", tc.rule, err, tc.msg)
		}
	}
}

func mustParse(t *testing.T, rules ...string) []Rule {
	t.Helper()
	var out []Rule
	for _, s := range rules {
		r, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestCheckOrder(t *testing.T) {
	rules := mustParse(t, "user=a => http://a.svc", "* => http://all.svc", "user=b => http://b.svc", "group=g => http://g.svc")
	err := CheckOrder(rules)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("CheckOrder = %v, want ErrUnreachable", err)
	}
	want := `rule 3 "user=b => http://b.svc" can never match: an earlier rule matches everyone: rule 2 is *` + "\n" +
		`rule 4 "group=g => http://g.svc" can never match: an earlier rule matches everyone: rule 2 is *`
	if err.Error() != want {
		t.Errorf("CheckOrder message\n got %s\nwant %s", err, want)
	}
	if err := CheckOrder(rules[:2]); err != nil {
		t.Errorf("a final * is fine: %v", err)
	}
}

func TestMatching(t *testing.T) {
	rules := mustParse(t,
		"user=alice => http://alice.svc",
		"group=/team-a,role=admin => http://team-a-admin.svc",
		"group=team-a => http://team-a.svc",
		"role=ide:user => http://ide.svc",
		"email=Carol@Example.com => http://carol.svc",
	)
	for _, tc := range []struct {
		name string
		id   auth.Identity
		want string // upstream host, "" for no match
	}{
		{"user", auth.Identity{User: "alice"}, "alice.svc"},
		{"user is exact", auth.Identity{User: "Alice"}, ""},
		{"user is not a prefix", auth.Identity{User: "alice2"}, ""},
		{"first match wins", auth.Identity{User: "alice", Groups: []string{"/team-a"}, Roles: []string{"admin"}}, "alice.svc"},
		{"all conditions must hold", auth.Identity{User: "x", Groups: []string{"team-a"}, Roles: []string{"admin"}}, "team-a-admin.svc"},
		{"one condition of two", auth.Identity{User: "x", Roles: []string{"admin"}}, ""},
		{"group without slash", auth.Identity{Groups: []string{"team-a"}}, "team-a.svc"},
		{"subgroup is not the group", auth.Identity{Groups: []string{"/team-a/sub"}}, ""},
		{"client role", auth.Identity{Roles: []string{"ide:user"}}, "ide.svc"},
		{"realm role is not a client role", auth.Identity{Roles: []string{"user"}}, ""},
		{"verified email, any case", auth.Identity{Email: "carol@example.com", EmailVerified: true}, "carol.svc"},
		{"unverified email", auth.Identity{Email: "carol@example.com"}, ""},
		{"nobody", auth.Identity{User: "bob"}, ""},
		{"empty user never matches", auth.Identity{}, ""},
	} {
		got := ""
		if n := Pick(rules, &tc.id); n > 0 {
			got = rules[n-1].Upstream.fixed.Host
		}
		if got != tc.want {
			t.Errorf("%s: picked %q, want %q", tc.name, got, tc.want)
		}
	}
	star := mustParse(t, "* => http://all.svc")
	if Pick(star, &auth.Identity{}) != 1 {
		t.Error("* must match everyone")
	}
}

// Hostile claim values: each must be refused (403 for the caller), never smuggled into the URL.
func TestTemplateHostileValues(t *testing.T) {
	tmpl := mustParse(t, "* => https://code-{user}.ide.svc:8443/base/")[0].Upstream
	for _, tc := range []struct {
		value  string
		reason Refusal
	}{
		{"", RefusedEmpty},
		{"carol.evil", RefusedCharacter},
		{"carol@evil.com", RefusedCharacter},
		{"evil.com:80", RefusedCharacter},
		{"carol:9999", RefusedCharacter},
		{"carol/../admin", RefusedCharacter},
		{"carol%2eevil", RefusedCharacter},
		{"%2e%2e", RefusedCharacter},
		{"carol?x=1", RefusedCharacter},
		{"carol#x", RefusedCharacter},
		{"carol evil", RefusedCharacter},
		{"carol\x00", RefusedCharacter},
		{"carol\r\nHost: evil", RefusedCharacter},
		{"carol_x", RefusedCharacter},
		{"\u212aarol", RefusedCharacter}, // Kelvin sign: strings.ToLower would make it "karol"
		{"cärol", RefusedCharacter},
		{"çarol", RefusedCharacter},
		{"xn--crol-loa\u200b", RefusedCharacter},
		{"ｃａｒｏｌ", RefusedCharacter}, // fullwidth
		{strings.Repeat("a", 64), RefusedTooLong},
		{strings.Repeat("a", 59), RefusedLabelLong}, // "code-" + 59 = 64
	} {
		_, err := tmpl.Resolve(&auth.Identity{User: tc.value})
		var re *RefusedError
		if !errors.As(err, &re) || re.Reason != tc.reason || re.Placeholder != PlaceholderUser || re.Value != tc.value {
			t.Errorf("Resolve(user=%q) = %v, want refusal %q", tc.value, err, tc.reason)
		}
	}
	edge := mustParse(t, "* => http://{user}.ide.svc")[0].Upstream
	for _, v := range []string{"-carol", "carol-", "-"} {
		_, err := edge.Resolve(&auth.Identity{User: v})
		var re *RefusedError
		if !errors.As(err, &re) || re.Reason != RefusedLabelEdge {
			t.Errorf("Resolve(user=%q) = %v, want refusal %q", v, err, RefusedLabelEdge)
		}
	}
}

func TestTemplateResolve(t *testing.T) {
	for _, tc := range []struct {
		rule string
		id   auth.Identity
		want string
	}{
		{"* => https://code-{user}.ide.svc:8443/base/", auth.Identity{User: "carol"}, "https://code-carol.ide.svc:8443/base/"},
		{"* => http://code-{user}.ide.svc", auth.Identity{User: "Carol-2"}, "http://code-carol-2.ide.svc"},
		{"* => http://{user}.ide.svc", auth.Identity{User: strings.Repeat("A", 63)}, "http://" + strings.Repeat("a", 63) + ".ide.svc"},
		{"* => http://{sub}.ide.svc", auth.Identity{Subject: "4f8b3c1e-0d2a-4a7e-9b1c-2e3f4a5b6c7d"}, "http://4f8b3c1e-0d2a-4a7e-9b1c-2e3f4a5b6c7d.ide.svc"},
		{"* => http://{preferred_username}-{sub}.x.svc", auth.Identity{PreferredUsername: "dave", Subject: "42"}, "http://dave-42.x.svc"},
		{"* => http://{user}.ide.svc", auth.Identity{User: "2130706433"}, "http://2130706433.ide.svc"},
	} {
		r := mustParse(t, tc.rule)[0]
		u, err := r.Upstream.Resolve(&tc.id)
		if err != nil {
			t.Errorf("%s with %+v: %v", tc.rule, tc.id, err)
			continue
		}
		if u.String() != tc.want {
			t.Errorf("%s: %s, want %s", tc.rule, u, tc.want)
		}
		if u.Hostname() == "" || strings.ContainsAny(u.Hostname(), "/@:%") {
			t.Errorf("%s: host %q", tc.rule, u.Hostname())
		}
	}
	// The second placeholder of a host is checked as strictly as the first.
	two := mustParse(t, "* => http://{preferred_username}.{user}.ide.svc")[0].Upstream
	if _, err := two.Resolve(&auth.Identity{PreferredUsername: "ok", User: "a.b"}); err == nil {
		t.Error("a dot in the second placeholder must be refused")
	}
	// A host over 253 characters is refused even when each label fits.
	long := mustParse(t, "* => http://{user}.{user}.{user}.{user}.ide.svc")[0].Upstream
	_, err := long.Resolve(&auth.Identity{User: strings.Repeat("a", 63)})
	var re *RefusedError
	if !errors.As(err, &re) || re.Reason != RefusedHostLength {
		t.Errorf("4x63 labels: %v, want %q", err, RefusedHostLength)
	}
	// A fixed upstream resolves to itself whatever the identity.
	fixed := mustParse(t, "* => http://all.svc:81/p")[0].Upstream
	if u, err := fixed.Resolve(&auth.Identity{User: "a.b"}); err != nil || u.String() != "http://all.svc:81/p" {
		t.Errorf("fixed: %v %v", u, err)
	}
}

// Resolving never shares state: the URL returned for one caller is not changed by the next.
func TestTemplateResolveIsolated(t *testing.T) {
	tmpl := mustParse(t, "* => http://ide-{user}.ide.svc/")[0].Upstream
	a, _ := tmpl.Resolve(&auth.Identity{User: "alice"})
	c, _ := tmpl.Resolve(&auth.Identity{User: "carol"})
	if a.Host != "ide-alice.ide.svc" || c.Host != "ide-carol.ide.svc" {
		t.Errorf("hosts %q, %q", a.Host, c.Host)
	}
}
