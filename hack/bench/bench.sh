#!/usr/bin/env bash
# make bench / make bench-quick: builds the benchmark runner (hack/bench), makes sure wrk and
# oauth2-proxy are there, and runs it with the arguments given (-quick for the subset).
#
# wrk and oauth2-proxy are benchmark tools, never part of the repository. When they are not on
# PATH they are installed into $PODGATE_BENCH_CACHE (default ~/.cache/podgate-bench), keyed by
# version: wrk and its LuaJIT library unpacked from their Debian packages (no root, nothing
# installed system-wide), oauth2-proxy built with go install.
#
# BASELINE=<git revision> also builds that revision's sidecar and injector (into the cache, keyed by
# commit) and measures them in the same run, interleaved with this tree's: the before and after of a
# change as ratios from one run (bearer_vs_baseline=…, webhook_vs_baseline=…). The benchmark renders
# the sidecar's arguments from this tree's options, so the baseline must accept the same flags.
#
# The runner pins by default: the process under test (sidecar, oauth2-proxy, injector) alone on the
# last CPU, wrk, vegeta and the upstream on the others (docs/benchmarks.md says why). PIN=0 runs
# everything on every CPU.
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

# baseline_args builds the sidecar and injector of $BASELINE into the cache and prints the bench's
# arguments for them.
baseline_args() {
	[[ -n ${BASELINE:-} ]] || return 0
	local rev dir src
	rev=$(git rev-parse --verify "$BASELINE^{commit}")
	dir=$CACHE/baseline-$rev
	if [[ ! -x $dir/sidecar || ! -x $dir/injector ]]; then
		log "building the sidecar and injector of $BASELINE ($rev) into $dir"
		src=$(mktemp -d)
		git archive "$rev" | tar -x -C "$src"
		rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
		(cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$dir.tmp/" ./cmd/sidecar ./cmd/injector)
		rm -rf "$src" "$dir" && mv "$dir.tmp" "$dir"
	fi
	echo "-baseline-sidecar=$dir/sidecar -baseline-injector=$dir/injector"
}

WRK=$(wrk_bin)
O2P=$(o2p_bin)
BASE=$(baseline_args)
read -r -a BASE_ARGS <<<"$BASE"
go build -o bin/bench ./hack/bench
PIN_ARGS=()
[[ ${PIN:-1} != 0 ]] || PIN_ARGS=(-pin=false)
exec bin/bench -wrk "$WRK" -oauth2-proxy "$O2P" -sidecar bin/sidecar -injector bin/injector "${BASE_ARGS[@]}" "${PIN_ARGS[@]}" "$@"
