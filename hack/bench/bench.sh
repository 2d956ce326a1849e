#!/usr/bin/env bash
# make bench / make bench-quick: builds the benchmark runner (hack/bench), makes sure wrk and
# oauth2-proxy are there, and runs it with the arguments given (-quick for the subset).
#
# wrk and oauth2-proxy are benchmark tools, never part of the repository. When they are not on
# PATH they are installed into $PODGATE_BENCH_CACHE (default ~/.cache/podgate-bench), keyed by
# version: wrk and its LuaJIT library unpacked from their Debian packages (no root, nothing
# installed system-wide), oauth2-proxy built with go install.
set -euo pipefail

cd "$(dirname "$0")/../.."
CACHE=${PODGATE_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/podgate-bench}
OAUTH2_PROXY_VERSION=${OAUTH2_PROXY_VERSION:-v7.15.6}

log() { echo "bench.sh: $*" >&2; }

# wrk: on PATH, or unpacked from the Debian packages into the cache with a wrapper that points the
# dynamic linker at the unpacked LuaJIT.
wrk_bin() {
	if command -v wrk >/dev/null; then command -v wrk; return; fi
	local ver dir tmp deb
	ver=$(apt-cache show wrk 2>/dev/null | awk '/^Version:/ {print $2; exit}')
	[[ -n $ver ]] || { log "wrk is not on PATH and apt knows no wrk package (run apt-get update)"; return 1; }
	dir=$CACHE/wrk-${ver//[^A-Za-z0-9.]/_}
	if [[ ! -x $dir/wrk ]]; then
		log "installing wrk $ver into $dir"
		tmp=$(mktemp -d) && chmod 755 "$tmp" # apt-get download runs as _apt when it can
		(cd "$tmp" && apt-get download wrk libluajit-5.1-2 libluajit-5.1-common >&2)
		rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
		for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$dir.tmp"; done
		rm -rf "$tmp"
		# The $ expressions are for the wrapper to expand when it runs.
		# shellcheck disable=SC2016
		printf '#!/bin/sh\nLD_LIBRARY_PATH="%s/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s/usr/bin/wrk" "$@"\n' \
			"$dir" "$dir" >"$dir.tmp/wrk"
		chmod +x "$dir.tmp/wrk"
		rm -rf "$dir" && mv "$dir.tmp" "$dir"
		# The wrapper names its final directory, so it runs only after the move.
		"$dir/wrk" -v 2>&1 | head -1 >&2 || true
	fi
	echo "$dir/wrk"
}

o2p_bin() {
	if [[ -n ${OAUTH2_PROXY:-} ]]; then echo "$OAUTH2_PROXY"; return; fi
	local dir=$CACHE/oauth2-proxy-$OAUTH2_PROXY_VERSION
	if [[ ! -x $dir/oauth2-proxy ]]; then
		log "building oauth2-proxy $OAUTH2_PROXY_VERSION into $dir"
		GOBIN=$dir.tmp go install "github.com/oauth2-proxy/oauth2-proxy/v7@$OAUTH2_PROXY_VERSION"
		rm -rf "$dir" && mv "$dir.tmp" "$dir"
	fi
	echo "$dir/oauth2-proxy"
}

WRK=$(wrk_bin)
O2P=$(o2p_bin)
go build -o bin/bench ./hack/bench
exec bin/bench -wrk "$WRK" -oauth2-proxy "$O2P" -sidecar bin/sidecar -injector bin/injector "$@"
