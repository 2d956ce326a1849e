// Package version holds the release version, set at link time:
//
//	go build -ldflags "-X github.com/podgate/podgate/internal/version.Version=v1.2.3"
//
// The injector uses it to pick the sidecar image released with it.
package version

// Version is "dev" in builds that did not set it.
var Version = "dev"
