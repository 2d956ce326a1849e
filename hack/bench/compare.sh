#!/usr/bin/env bash
# Side-by-side throughput and memory of podgate's sidecar and oauth2-proxy on the bearer-JWT path,
# against the same trivial Go upstream, all on loopback, in one run:
#   1. the upstream directly (the ceiling),
#   2. oauth2-proxy --skip-jwt-bearer-tokens with a bearer JWT,
#   3. podgate sidecar with the same bearer JWT.
# Prints req/s, p50/p99 latency, ratios, and VmRSS idle and after load, as a Markdown table.
# The three targets are measured in ROUNDS interleaved rounds (default 3) and each target's median
# round is reported, so a burst of load from other processes skews no single target.
#
# Needs wrk and an oauth2-proxy binary (OAUTH2_PROXY, default /tmp/o2p/oauth2-proxy), e.g.
#   apt-get install -y wrk
#   GOBIN=/tmp/o2p go install github.com/oauth2-proxy/oauth2-proxy/v7@v7.15.6
# Neither is part of the repository. Tunables: DURATION (10s), CONNS (32), THREADS (1).
set -euo pipefail

cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
O2P=${OAUTH2_PROXY:-/tmp/o2p/oauth2-proxy}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk not found (apt-get install -y wrk)" >&2; exit 1; }
[ -x "$O2P" ] || { echo "oauth2-proxy not found at $O2P (set OAUTH2_PROXY)" >&2; exit 1; }

echo "building sidecar and bench fixture..." >&2
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$WORK/sidecar" ./cmd/sidecar
go build -o "$WORK/benchenv" ./hack/bench/benchenv

"$WORK/benchenv" -env "$WORK/bench.env" -upstream 127.0.0.1:18080 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/bench.env" ] && break; sleep 0.1; done
# shellcheck disable=SC1091
. "$WORK/bench.env"

COOKIE_SECRET=0123456789abcdef0123456789abcdef
"$O2P" --provider=oidc --oidc-issuer-url="$ISSUER" --client-id=app --client-secret=bench-secret \
  --cookie-secret="$COOKIE_SECRET" --cookie-secure=false --email-domain='*' \
  --upstream="$UPSTREAM/" --http-address=127.0.0.1:14180 --redirect-url=http://127.0.0.1:14180/oauth2/callback \
  --skip-jwt-bearer-tokens=true >"$WORK/o2p.log" 2>&1 &
O2P_PID=$!
PIDS+=($O2P_PID)

PODGATE_COOKIE_SECRET=$COOKIE_SECRET PODGATE_CLIENT_SECRET=bench-secret "$WORK/sidecar" \
  --issuer-url="$ISSUER" --client-id=app --cookie-secure=false \
  --proxy=127.0.0.1:14181="$UPSTREAM" --admin-addr=127.0.0.1:14190 --log-level=warn >"$WORK/podgate.log" 2>&1 &
PG_PID=$!
PIDS+=($PG_PID)

wait_ok() { # url [header]
  for _ in $(seq 200); do
    if curl -fsS -o /dev/null ${2:+-H "$2"} "$1" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "not answering: $1" >&2; return 1
}
wait_ok "$UPSTREAM/"
wait_ok http://127.0.0.1:14190/ready
wait_ok http://127.0.0.1:14181/ "Authorization: Bearer $TOKEN"
wait_ok http://127.0.0.1:14180/ "Authorization: Bearer $TOKEN" || { cat "$WORK/o2p.log" >&2; exit 1; }
sleep 1

rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
O2P_IDLE=$(rss $O2P_PID)
PG_IDLE=$(rss $PG_PID)

# run name url -> "req/s p50 p99" (latencies in ms)
run() {
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "$2")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then echo "$1: wrk saw non-2xx responses:" >&2; echo "$out" >&2; exit 1; fi
  echo "$rps $(ms "$p50") $(ms "$p99")"
}
ms() { # wrk latency (us|ms|s) -> ms
  awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.2f", n }'
}

echo "wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS interleaved rounds..." >&2
for r in $(seq "$ROUNDS"); do
  run direct "$UPSTREAM/" >>"$WORK/direct.runs"
  run oauth2-proxy http://127.0.0.1:14180/ >>"$WORK/o2p.runs"
  run podgate http://127.0.0.1:14181/ >>"$WORK/podgate.runs"
  echo "  round $r: direct $(tail -1 "$WORK/direct.runs" | cut -d' ' -f1), oauth2-proxy $(tail -1 "$WORK/o2p.runs" | cut -d' ' -f1), podgate $(tail -1 "$WORK/podgate.runs" | cut -d' ' -f1) req/s" >&2
done
median() { sort -n -k1,1 "$1" | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }
read -r D_RPS D_P50 D_P99 <<<"$(median "$WORK/direct.runs")"
read -r O_RPS O_P50 O_P99 <<<"$(median "$WORK/o2p.runs")"
read -r P_RPS P_P50 P_P99 <<<"$(median "$WORK/podgate.runs")"

O2P_LOAD=$(rss $O2P_PID)
PG_LOAD=$(rss $PG_PID)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a/b }'; }

cat <<TABLE
| target | req/s | p50 (ms) | p99 (ms) | vs direct | vs oauth2-proxy |
| --- | ---: | ---: | ---: | ---: | ---: |
| upstream direct | $D_RPS | $D_P50 | $D_P99 | 1.00 | – |
| oauth2-proxy v7.15.6 (bearer JWT) | $O_RPS | $O_P50 | $O_P99 | $(ratio "$O_RPS" "$D_RPS") | 1.00 |
| podgate sidecar (bearer JWT) | $P_RPS | $P_P50 | $P_P99 | $(ratio "$P_RPS" "$D_RPS") | $(ratio "$P_RPS" "$O_RPS") |

Median of $ROUNDS rounds, wrk -t$THREADS -c$CONNS -d$DURATION, $(nproc) CPUs, load average before: $LOAD_BEFORE.

| process | VmRSS idle (MB) | VmRSS after load (MB) |
| --- | ---: | ---: |
| oauth2-proxy v7.15.6 | $O2P_IDLE | $O2P_LOAD |
| podgate sidecar | $PG_IDLE | $PG_LOAD |
TABLE
