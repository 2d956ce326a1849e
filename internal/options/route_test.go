package options

import (
	"strings"
	"testing"
)

func TestRouteFlags(t *testing.T) {
	o, err := Parse(append(validArgs(),
		"--proxy=:4180=", "--route=user=carol => http://carol-ide.ide.svc:8080",
		"--route=* => http://code-server-{user}.ide.svc:8080"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Routes) != 2 || o.Proxies[0].Upstream != nil || o.Proxies[0].String() != ":4180=" {
		t.Fatalf("routes %v, proxies %v", o.Routes, o.Proxies)
	}
	back, err := Parse(append(o.Args(), "--cookie-secret="+testCookieSecret), noEnv)
	if err != nil || len(back.Routes) != 2 || back.Routes[1].String() != "* => http://code-server-{user}.ide.svc:8080" {
		t.Fatalf("routes do not round-trip through Args: %v %v", back, err)
	}
	// From the environment, comma-separated like every list: a rule with conditions joined by
	// commas cannot be given there; one without can.
	o, err = Parse(append(validArgs(), "--proxy=:4180="), envMap(map[string]string{"PODGATE_ROUTE": "* => http://all.apps.svc"}))
	if err != nil || len(o.Routes) != 1 {
		t.Fatalf("PODGATE_ROUTE: %v %v", o, err)
	}
}

func TestRouteFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--route=carol => http://c.svc"},
			[]string{`--route: rule "carol => http://c.svc" has a condition that is not KEY=VALUE: "carol"`}},
		{[]string{"--route=user=carol", "--route=* => ftp://x"}, []string{
			`--route: rule "user=carol" is not MATCH => UPSTREAM`,
			`--route: rule "* => ftp://x" has an UPSTREAM that is not an absolute http(s) URL with a host: "ftp://x"`}},
		{[]string{"--proxy=:4180="}, []string{`--proxy: ":4180=" has no upstream, and there is no --route to serve on it`}},
		{[]string{"--proxy=:4180=", "--route=* => http://a.svc", "--skip-auth=/public"},
			[]string{`--skip-auth: ":4180=" has no upstream: a skipped request carries no identity to route by`}},
		{[]string{"--route=* => http://a.svc", "--route=user=b => http://b.svc"},
			[]string{`--route: rule 2 "user=b => http://b.svc" can never match: an earlier rule matches everyone: rule 1 is *`}},
	} {
		_, err := Parse(append(validArgs(), tc.args...), noEnv)
		if err == nil {
			t.Errorf("%q: no error", tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q:\n got %v\nwant %s", tc.args, err, w)
			}
		}
	}
}
