// Command benchenv is the fixture of hack/bench/compare.sh: a small Go upstream, an in-process
// test IdP (internal/oidctest) on loopback, and a long-lived access token. It writes ISSUER, TOKEN
// and UPSTREAM as shell assignments to the file named by -env and serves until killed.
// It is a benchmark tool only: the IdP logs anyone in.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/podgate/podgate/internal/oidctest"
)

func main() {
	envFile := flag.String("env", "bench.env", "file to write ISSUER, TOKEN and UPSTREAM to")
	upstreamAddr := flag.String("upstream", "127.0.0.1:18080", "address of the trivial upstream")
	flag.Parse()

	idp := oidctest.Start(oidctest.Config{ClientID: "app", ClientSecret: "bench-secret", AccessTTL: 2 * time.Hour})
	defer idp.Close()
	tok := idp.Mint(idp.Claims())

	ln, err := net.Listen("tcp", *upstreamAddr)
	if err != nil {
		log.Fatal(err)
	}
	body := []byte("hello from the upstream\n")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	})}
	env := fmt.Sprintf("ISSUER=%s\nTOKEN=%s\nUPSTREAM=http://%s\n", idp.Issuer(), tok, ln.Addr())
	if err := os.WriteFile(*envFile, []byte(env), 0o600); err != nil {
		log.Fatal(err)
	}
	log.Fatal(srv.Serve(ln))
}
