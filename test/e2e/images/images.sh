#!/usr/bin/env bash
# Builds the e2e images without a container engine or a registry, and loads them into a cluster.
#   images.sh build    static Go binaries -> buildah (chroot isolation, BASE=scratch, no pulls) ->
#                      docker-archive tarballs in $PODGATE_E2E_CACHE/images, one per image, named
#                      after a hash of the binary and the Dockerfile, so unchanged images are not rebuilt
#   images.sh import   imports the tarballs into the local cluster's containerd (namespace k8s.io)
#   images.sh list     prints "IMAGE TARBALL" lines (the kind provider loads them with kind load image-archive)
# Image names: podgate.local/<name>:e2e, used with imagePullPolicy Never/IfNotPresent.
# An image's source is a Go package of the repository (./...), or @FILE: a binary built into the cache
# by cluster/local/build.sh (CoreDNS) or test/e2e/traefik/build.sh (Traefik), skipped when it is not
# there (the kind provider brings its own DNS).
source "$(dirname "$0")/../cluster/local/lib.sh"
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=$PODGATE_E2E_CACHE/images
BIN=$PODGATE_E2E_CACHE/images/bin
: "${IMAGE_TAG:=e2e}"

# name|go package or @binary|Dockerfile (relative to the repository)
TRAEFIK_BIN=$PODGATE_E2E_CACHE/traefik-$TRAEFIK_VERSION/bin/traefik
IMAGES="pause|./test/e2e/apps/pause|test/e2e/apps/pause/Dockerfile
echo|./test/e2e/apps/echo|test/e2e/apps/echo/Dockerfile
grpc|./test/e2e/apps/grpc|test/e2e/apps/grpc/Dockerfile
injector|./cmd/injector|Dockerfile.injector
sidecar|./cmd/sidecar|Dockerfile.sidecar
cni|./cmd/cni|Dockerfile.cni
traefik|@$TRAEFIK_BIN|test/e2e/traefik/Dockerfile
coredns|@$COREDNS_BIN/coredns|test/e2e/cluster/local/coredns/Dockerfile"

# each_image FUNC: calls FUNC NAME PKG DOCKERFILE for every image whose sources exist.
each_image() {
	local name pkg dockerfile
	while IFS='|' read -r name pkg dockerfile; do
		if [[ $pkg == @* && ! -x ${pkg#@} ]]; then
			log "image $name: skipped, ${pkg#@} is not built"
			continue
		fi
		if [[ ! -f $REPO/$dockerfile || ($pkg != @* && ! -d $REPO/${pkg#./}) ]]; then
			log "image $name: skipped, $dockerfile or $pkg is missing"
			continue
		fi
		"$1" "$name" "$pkg" "$dockerfile"
	done <<<"$IMAGES"
}

tarball() { # NAME: the tarball built from the current binary and Dockerfile
	local key
	key=$(cat "$BIN/$1" "$REPO/$2" | sha256sum | cut -c1-16)
	echo "$OUT/$1-$key.tar"
}

build_one() {
	local name=$1 pkg=$2 dockerfile=$3 tar image=podgate.local/$1:$IMAGE_TAG
	tar=$(tarball "$name" "$dockerfile")
	if [[ -f $tar ]]; then log "image $image: cached ($(basename "$tar"))"; return; fi
	local ctx store
	ctx=$(mktemp -d) store=$(mktemp -d)
	# Every Dockerfile COPYs its prebuilt static binary from bin/<name> in the context.
	mkdir -p "$ctx/bin" && cp "$BIN/$name" "$ctx/bin/$name"
	# vfs storage: no overlay mounts to leave behind, and these images are one small layer.
	local buildah=(buildah --root "$store/root" --runroot "$store/runroot" --storage-driver vfs)
	"${buildah[@]}" bud --quiet --isolation chroot --pull-never --layers=false --build-arg BASE=scratch \
		-f "$REPO/$dockerfile" -t "$image" "$ctx" >/dev/null
	rm -f "$OUT/$name"-*.tar
	"${buildah[@]}" push --quiet "$image" "docker-archive:$tar.tmp:$image"
	mv "$tar.tmp" "$tar"
	"${buildah[@]}" rmi --all --force >/dev/null 2>&1 || true
	rm -rf "$ctx" "$store"
	log "image $image: built ($(du -h "$tar" | cut -f1))"
}

build() {
	mkdir -p "$OUT" "$BIN"
	# buildah keeps a blob-info cache under /var/lib/containers whatever --root says. Remove only
	# what this build created there, and directories only when empty: another buildah user on the
	# machine may have created them meanwhile.
	local cache_dirs=(/var/lib/containers /var/lib/containers/cache) cache_file=/var/lib/containers/cache/blob-info-cache-v1.boltdb
	local created=() d had_file=0
	for d in "${cache_dirs[@]}"; do [[ -e $d ]] || created=("$d" "${created[@]}"); done
	[[ -e $cache_file ]] && had_file=1
	# Traefik: built once per version into the cache (a no-op when it is there; the local provider's
	# prepare phase already built it).
	bash "$(dirname "$0")/../traefik/build.sh"
	local pkgs=() name pkg dockerfile
	while IFS='|' read -r name pkg dockerfile; do
		if [[ $pkg == @* ]]; then
			[[ -x ${pkg#@} ]] && cp "${pkg#@}" "$BIN/$name"
		elif [[ -d $REPO/${pkg#./} ]]; then
			pkgs+=("$pkg")
		fi
	done <<<"$IMAGES"
	(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -o "$BIN/" \
		-ldflags "-s -w -X github.com/podgate/podgate/internal/version.Version=$IMAGE_TAG" "${pkgs[@]}")
	each_image build_one
	((had_file)) || rm -f "$cache_file"
	for d in "${created[@]}"; do rmdir "$d" 2>/dev/null || true; done
	return 0
}

list_one() { echo "podgate.local/$1:$IMAGE_TAG $(tarball "$1" "$3")"; }

import() {
	local image tar
	each_image list_one | while read -r image tar; do
		[[ -f $tar ]] || die "image $image: $tar not built; run '$0 build' first"
		ctr_ images import --no-unpack=false "$tar" >/dev/null
		log "image $image: imported into containerd"
	done
}

case "${1:-}" in
build) build ;;
import) import ;;
list) each_image list_one ;;
*) die "usage: $0 build|import|list" ;;
esac
