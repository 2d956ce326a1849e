// Command certs (`make certs`) writes the development CA and the webhook's serving certificate
// into certs/ and copies what the dev overlay needs into manifests/overlays/dev/certs/. The files
// are git-ignored; running it again keeps certificates that are still valid for 30 days.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/podgate/podgate/internal/devcerts"
)

func main() {
	dir := flag.String("dir", "certs", "where to write ca.crt, ca.key, tls.crt, tls.key")
	copyTo := flag.String("copy-to", "manifests/overlays/dev/certs", "directory receiving ca.crt, tls.crt and tls.key for the dev overlay (empty: none)")
	svc := flag.String("service", "podgate-injector", "webhook Service name")
	ns := flag.String("namespace", "podgate-system", "webhook Service namespace")
	validity := flag.Duration("validity", 365*24*time.Hour, "serving certificate lifetime")
	flag.Parse()
	wrote, err := devcerts.Ensure(devcerts.Options{Dir: *dir, Service: *svc, Namespace: *ns, Validity: *validity, RenewBefore: 30 * 24 * time.Hour})
	if err != nil {
		fmt.Fprintln(os.Stderr, "certs:", err)
		os.Exit(1)
	}
	if wrote {
		fmt.Printf("certs: wrote a new CA and serving certificate for %v into %s\n", devcerts.DNSNames(*svc, *ns), *dir)
	} else {
		fmt.Printf("certs: %s still valid, kept\n", *dir)
	}
	if *copyTo == "" {
		return
	}
	if err := os.MkdirAll(*copyTo, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "certs:", err)
		os.Exit(1)
	}
	for _, f := range []string{devcerts.CAFile, devcerts.CertFile, devcerts.KeyFile} {
		b, err := os.ReadFile(filepath.Join(*dir, f))
		if err == nil {
			err = os.WriteFile(filepath.Join(*copyTo, f), b, 0o600)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "certs:", err)
			os.Exit(1)
		}
	}
	fmt.Printf("certs: copied ca.crt, tls.crt, tls.key into %s\n", *copyTo)
}
