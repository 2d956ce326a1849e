package auth

import "testing"

func TestIdentityFromKeycloakClaims(t *testing.T) {
	c, err := ParseClaims([]byte(`{"sub":"s","preferred_username":"alice","email":"a@x.org","email_verified":true,
		"groups":["/g1","g2"],"realm_access":{"roles":["r1"]},"resource_access":{"app":{"roles":["c1"]},"acct":{"roles":["c2"]}},"exp":1}`))
	if err != nil {
		t.Fatal(err)
	}
	id := c.Identity(ClaimNames{User: "preferred_username", Groups: "groups"})
	if id.User != "alice" || id.Email != "a@x.org" || !id.EmailVerified || len(id.Groups) != 2 {
		t.Fatalf("%+v", id)
	}
	want := []string{"r1", "acct:c2", "app:c1"}
	if len(id.Roles) != 3 || id.Roles[0] != want[0] || id.Roles[1] != want[1] || id.Roles[2] != want[2] {
		t.Errorf("roles %q, want %q", id.Roles, want)
	}
	// Missing user claim falls back to sub; malformed claim types are ignored, never a panic.
	c, _ = ParseClaims([]byte(`{"sub":"s","groups":"single","realm_access":"x","resource_access":{"a":7}}`))
	id = c.Identity(ClaimNames{User: "preferred_username", Groups: "groups"})
	if id.User != "s" || len(id.Groups) != 1 || len(id.Roles) != 0 {
		t.Errorf("%+v", id)
	}
}

func TestPolicy(t *testing.T) {
	id := &Identity{Roles: []string{"user", "app:reader"}, Groups: []string{"/team"}, Email: "a@example.com", EmailVerified: true}
	cases := []struct {
		p    Policy
		want bool
	}{
		{Policy{}, true},
		{Policy{Roles: []string{"admin", "user"}}, true},
		{Policy{Roles: []string{"app:reader"}}, true},
		{Policy{Roles: []string{"reader"}}, false},
		{Policy{Groups: []string{"team"}}, true},
		{Policy{Groups: []string{"/team"}}, true},
		{Policy{Groups: []string{"/other"}}, false},
		{Policy{EmailDomains: []string{"EXAMPLE.com"}}, true},
		{Policy{EmailDomains: []string{"*"}}, true},
		{Policy{EmailDomains: []string{"evil.com"}}, false},
		// Each configured kind must pass.
		{Policy{Roles: []string{"user"}, Groups: []string{"/other"}}, false},
		{Policy{Roles: []string{"user"}, Groups: []string{"team"}, EmailDomains: []string{"example.com"}}, true},
	}
	for i, tc := range cases {
		if got, _ := tc.p.Allows(id); got != tc.want {
			t.Errorf("case %d %+v: %v", i, tc.p, got)
		}
	}
	unverified := *id
	unverified.EmailVerified = false
	if ok, why := (Policy{EmailDomains: []string{"*"}}).Allows(&unverified); ok || why != "emailDomain" {
		t.Errorf("unverified email allowed: %v %s", ok, why)
	}
}
