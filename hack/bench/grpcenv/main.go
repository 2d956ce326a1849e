// Command grpcenv is the fixture of hack/bench/grpc.sh: a gRPC upstream (grpc-go,
// grpc.testing.TestService with server reflection) and an in-process test IdP (internal/oidctest)
// on loopback with a long-lived access token. It writes ISSUER, TOKEN and GRPC_UPSTREAM as shell
// assignments to the file named by -env and serves until killed. It is a benchmark tool only: the
// IdP logs anyone in.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/podgate/podgate/internal/oidctest"
)

func main() {
	envFile := flag.String("env", "bench.env", "file to write ISSUER, TOKEN and GRPC_UPSTREAM to")
	grpcAddr := flag.String("grpc", "127.0.0.1:0", "address of the gRPC upstream")
	flag.Parse()

	idp := oidctest.Start(oidctest.Config{ClientID: "app", ClientSecret: "bench-secret", AccessTTL: 2 * time.Hour})
	defer idp.Close()
	addr, err := serveGRPC(*grpcAddr)
	if err != nil {
		log.Fatal(err)
	}
	env := fmt.Sprintf("ISSUER=%s\nTOKEN=%s\nGRPC_UPSTREAM=%s\n", idp.Issuer(), idp.Mint(idp.Claims()), addr)
	if err := os.WriteFile(*envFile, []byte(env), 0o600); err != nil {
		log.Fatal(err)
	}
	select {}
}
