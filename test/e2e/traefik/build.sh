#!/usr/bin/env bash
# Builds Traefik from the source tarball in third_party into $PODGATE_E2E_CACHE/traefik-$TRAEFIK_VERSION,
# keyed by version like Kubernetes and etcd, and skips the build when the binary is there:
#   bin/traefik   the static binary (dependencies through the Go module proxy; ~10 min on 2 cores)
#   crd/          the CRD definitions and their RBAC, copied from the tarball
# Traefik is never downloaded: the module proxy does not serve it in a buildable form (its go.mod has
# replace directives), so the tarball (TRAEFIK_SRC) is the only source, checked against its sha256.
source "$(dirname "$0")/../cluster/local/lib.sh"

TRAEFIK_DIR=$PODGATE_E2E_CACHE/traefik-$TRAEFIK_VERSION
mkdir -p "$TRAEFIK_DIR"
# One build at a time (the local provider's prepare phase and images.sh both call this): a second
# caller waits for the first and then finds the binary cached.
exec 9>"$TRAEFIK_DIR/.build.lock"
flock 9
[[ -x $TRAEFIK_DIR/bin/traefik && -d $TRAEFIK_DIR/crd ]] && { log "traefik $TRAEFIK_VERSION cached in $TRAEFIK_DIR"; exit 0; }
[[ -f $TRAEFIK_SRC ]] || die "traefik source $TRAEFIK_SRC is missing (set TRAEFIK_SRC)"
echo "$TRAEFIK_SHA256  $TRAEFIK_SRC" | sha256sum --check --quiet - || die "$TRAEFIK_SRC: sha256 is not $TRAEFIK_SHA256"

log "building traefik $TRAEFIK_VERSION from $TRAEFIK_SRC"
# Unpack and build in a scratch directory and move into place, so an interrupted build never looks cached.
src=$TRAEFIK_DIR/src
rm -rf "$src" && mkdir -p "$src" "$TRAEFIK_DIR/bin"
tar -xzf "$TRAEFIK_SRC" -C "$src" --strip-components=1
cd "$src" || die "cannot enter $src"
CGO_ENABLED=0 GOFLAGS="-buildvcs=false -modcacherw" go build -trimpath \
	-ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" -o "$src/traefik.out" ./cmd/traefik
rm -rf "$TRAEFIK_DIR/crd" && cp -r "$src/crd" "$TRAEFIK_DIR/crd"
mv "$src/traefik.out" "$TRAEFIK_DIR/bin/traefik"
rm -rf "$src"
log "built traefik $TRAEFIK_VERSION into $TRAEFIK_DIR"
