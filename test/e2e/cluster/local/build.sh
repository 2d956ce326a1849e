#!/usr/bin/env bash
# Builds the cluster's binaries from source through the Go module proxy into $PODGATE_E2E_CACHE,
# keyed by version, and skips whatever is already there:
#   kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl (k8s.io/kubernetes $K8S_VERSION)
#   etcd (go.etcd.io/etcd/server/v3 $ETCD_VERSION)
#   traefik ($TRAEFIK_VERSION, from its source tarball: test/e2e/traefik/build.sh)
#   coredns (github.com/coredns/coredns $COREDNS_VERSION, with only the plugins the cluster's Corefile uses)
# k8s.io/kubernetes cannot be required as a plain module: its go.mod replaces every k8s.io/X staging module
# with ./staging/src/k8s.io/X, so a wrapper module replaces each with the published v0.Y.Z instead.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

K8S_CMDS="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl"
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -modcacherw"

build_kubernetes() {
	local missing="" c
	for c in $K8S_CMDS; do [[ -x $K8S_BIN/$c ]] || missing+=" $c"; done
	[[ -z $missing ]] && { log "kubernetes $K8S_VERSION binaries cached in $K8S_BIN"; return; }
	log "building kubernetes $K8S_VERSION:$missing"
	local src=$PODGATE_E2E_CACHE/kubernetes-$K8S_VERSION/src
	mkdir -p "$src" && cd "$src"
	if [[ ! -f go.sum ]]; then
		local upstream goversion
		upstream=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
		goversion=$(awk '$1 == "go" {print $2; exit}' "$upstream")
		{
			printf 'module podgate.io/e2e/kubernetes\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$goversion" "$K8S_VERSION"
			awk -v v="v0.${K8S_VERSION#v1.}" '$2 == "=>" && $3 ~ /^\.\/staging\// {print "\t" $1 " => " $1 " " v}' "$upstream"
			echo ")"
		} >go.mod
		{
			printf '//go:build tools\n\npackage kubernetes\n\nimport (\n'
			for c in $K8S_CMDS; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
			echo ")"
		} >tools.go
		go mod tidy
	fi
	local minor; minor=$(cut -d. -f2 <<<"$K8S_VERSION")
	local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1
		-X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean
		-X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
	# Build into a scratch directory and move into place, so an interrupted build never looks cached.
	local out=$src/out; rm -rf "$out"; mkdir -p "$out" "$K8S_BIN"
	local pkgs=""; for c in $missing; do pkgs+=" k8s.io/kubernetes/cmd/$c"; done
	# shellcheck disable=SC2086
	go build -trimpath -ldflags "$ldflags" -o "$out/" $pkgs
	for c in $missing; do mv "$out/$c" "$K8S_BIN/$c"; done
	log "built kubernetes $K8S_VERSION into $K8S_BIN"
}

build_etcd() {
	[[ -x $ETCD_BIN/etcd ]] && { log "etcd $ETCD_VERSION cached in $ETCD_BIN"; return; }
	log "building etcd $ETCD_VERSION"
	local src=$PODGATE_E2E_CACHE/etcd-$ETCD_VERSION/src m
	mkdir -p "$src" "$ETCD_BIN" && cd "$src"
	if [[ ! -f go.sum ]]; then
		{
			printf 'module podgate.io/e2e/etcd\n\ngo 1.25.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n\nreplace (\n' "$ETCD_VERSION"
			for m in api client/pkg client/v3 pkg server; do
				m=${m%/v3}
				printf '\tgo.etcd.io/etcd/%s/v3 => go.etcd.io/etcd/%s/v3 %s\n' "$m" "$m" "$ETCD_VERSION"
			done
			echo ")"
		} >go.mod
		printf '//go:build tools\n\npackage etcd\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
		go mod tidy
	fi
	go build -trimpath -ldflags "-s -w" -o "$src/etcd" go.etcd.io/etcd/server/v3
	mv "$src/etcd" "$ETCD_BIN/etcd"
	log "built etcd $ETCD_VERSION into $ETCD_BIN"
}

# CoreDNS's own main links every plugin it ships (cloud DNS providers' SDKs among them). A main of our
# own links only the plugins cluster/local/coredns.yaml's Corefile names, in CoreDNS's plugin.cfg
# order (the order plugins see a query in), and builds in a fraction of the time.
COREDNS_PLUGINS="reload ready health errors log loadbalance cache kubernetes"

build_coredns() {
	[[ -x $COREDNS_BIN/coredns ]] && { log "coredns $COREDNS_VERSION cached in $COREDNS_BIN"; return; }
	log "building coredns $COREDNS_VERSION"
	local src=$PODGATE_E2E_CACHE/coredns-$COREDNS_VERSION/src p
	mkdir -p "$src" "$COREDNS_BIN" && cd "$src"
	if [[ ! -f go.sum ]]; then
		local upstream goversion
		upstream=$(go mod download -json "github.com/coredns/coredns@$COREDNS_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
		goversion=$(awk '$1 == "go" {print $2; exit}' "$upstream")
		printf 'module podgate.io/e2e/coredns\n\ngo %s\n\nrequire github.com/coredns/coredns %s\n' "$goversion" "$COREDNS_VERSION" >go.mod
		{
			printf 'package main\n\nimport (\n\t"github.com/coredns/coredns/core/dnsserver"\n\t"github.com/coredns/coredns/coremain"\n'
			for p in $COREDNS_PLUGINS; do printf '\t_ "github.com/coredns/coredns/plugin/%s"\n' "$p"; done
			printf ')\n\nfunc init() {\n\tdnsserver.Directives = []string{'
			for p in $COREDNS_PLUGINS; do printf '"%s", ' "$p"; done
			printf '}\n}\n\nfunc main() { coremain.Run() }\n'
		} >main.go
		go mod tidy
	fi
	go build -trimpath -ldflags "-s -w" -o "$src/coredns" .
	mv "$src/coredns" "$COREDNS_BIN/coredns"
	log "built coredns $COREDNS_VERSION into $COREDNS_BIN"
}

build_kubernetes
build_etcd
bash "$HERE/../../traefik/build.sh"
build_coredns
