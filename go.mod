module github.com/podgate/podgate

go 1.26.8

require (
	github.com/coreos/go-oidc/v3 v3.21.0
	github.com/go-jose/go-jose/v4 v4.1.9
	github.com/spf13/pflag v1.1.0
	go.uber.org/zap v1.28.0
	golang.org/x/oauth2 v0.38.0
)

require go.uber.org/multierr v1.10.0 // indirect
