package options

import "testing"

// BenchmarkArgs renders a typical injected sidecar's options: the injector does it once per pod.
// BenchmarkDefaults is the baseline in the same run (building the options value itself).
func BenchmarkArgs(b *testing.B) {
	o, err := Parse(append(validArgs(),
		"--proxy=:15000=http://127.0.0.1:8080",
		"--probe=app-ready=http://127.0.0.1:8080/healthz",
		"--allowed-role=admin", "--skip-auth=GET /public"), noEnv)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if len(o.Args()) == 0 {
			b.Fatal("nothing rendered")
		}
	}
}

func BenchmarkDefaults(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if o := Defaults(); o.AdminAddr == "" {
			b.Fatal("no admin address")
		}
	}
}
