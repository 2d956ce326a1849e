#!/usr/bin/env bash
# Unary gRPC calls per second through podgate's sidecar against the same grpc-go server directly,
# on loopback, in one run, measured with ghz (a maintained gRPC load tool):
#   1. the gRPC upstream directly (the ceiling),
#   2. the sidecar with a bearer JWT in the call's metadata (h2c in, HTTP/2 to the app).
# Prints calls/s, p50/p99 latency and the ratio as a Markdown table. The two targets are measured in
# ROUNDS interleaved rounds (default 3) and each target's median round is reported.
#
# Needs ghz (GHZ, default /tmp/ghz/ghz), which builds from the Go module proxy:
#   GOBIN=/tmp/ghz go install github.com/bojand/ghz/cmd/ghz@v0.121.0
# It is not part of the repository. Tunables: CALLS per round (100000; a count, not a duration, so
# no call is cut off at the end), CONCURRENCY (32), CONNECTIONS (1).
set -euo pipefail

cd "$(dirname "$0")/../.."
CALLS=${CALLS:-100000}
CONCURRENCY=${CONCURRENCY:-32}
CONNECTIONS=${CONNECTIONS:-1}
ROUNDS=${ROUNDS:-3}
GHZ=${GHZ:-/tmp/ghz/ghz}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$GHZ" ] || { echo "ghz not found at $GHZ (set GHZ)" >&2; exit 1; }

echo "building sidecar and bench fixture..." >&2
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$WORK/sidecar" ./cmd/sidecar
go build -o "$WORK/grpcenv" ./hack/bench/grpcenv

"$WORK/grpcenv" -env "$WORK/bench.env" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/bench.env" ] && break; sleep 0.1; done
# shellcheck disable=SC1091
. "$WORK/bench.env"

PODGATE_COOKIE_SECRET=0123456789abcdef0123456789abcdef PODGATE_CLIENT_SECRET=bench-secret "$WORK/sidecar" \
  --issuer-url="$ISSUER" --client-id=app --cookie-secure=false \
  --proxy=127.0.0.1:14182="http://$GRPC_UPSTREAM" --admin-addr=127.0.0.1:14191 --log-level=warn >"$WORK/podgate.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do curl -fsS -o /dev/null http://127.0.0.1:14191/ready 2>/dev/null && break; sleep 0.05; done

METHOD=grpc.testing.TestService.UnaryCall
MD="{\"authorization\":\"Bearer $TOKEN\"}"
# run target -> "calls/s p50 p99" (latencies in ms); every call must be OK.
run() {
  "$GHZ" --insecure --call "$METHOD" -d '{"payload":{"body":"aGVsbG8="}}' \
    --metadata "$MD" --reflect-metadata "$MD" -c "$CONCURRENCY" --connections "$CONNECTIONS" \
    -n "$CALLS" --format json "$1" >"$WORK/ghz.json"
  python3 - "$WORK/ghz.json" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    r = json.load(f)
bad = {k: v for k, v in r.get("statusCodeDistribution", {}).items() if k != "OK"}
if bad:
    sys.exit("calls not OK: %s" % bad)
lat = {d["percentage"]: d["latency"] / 1e6 for d in r["latencyDistribution"]}
print("%.0f %.2f %.2f" % (r["rps"], lat[50], lat[99]))
PY
}
# The first calls through the sidecar verify the token; later ones hit the token cache.
CALLS=2000 run 127.0.0.1:14182 >/dev/null
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "ghz -c$CONCURRENCY --connections $CONNECTIONS -n$CALLS, $ROUNDS interleaved rounds..." >&2
for r in $(seq "$ROUNDS"); do
  run "$GRPC_UPSTREAM" >>"$WORK/direct.runs"
  run 127.0.0.1:14182 >>"$WORK/podgate.runs"
  echo "  round $r: direct $(tail -1 "$WORK/direct.runs" | cut -d' ' -f1), podgate $(tail -1 "$WORK/podgate.runs" | cut -d' ' -f1) calls/s" >&2
done
median() { sort -n -k1,1 "$1" | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }
read -r D_RPS D_P50 D_P99 <<<"$(median "$WORK/direct.runs")"
read -r P_RPS P_P50 P_P99 <<<"$(median "$WORK/podgate.runs")"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a/b }'; }

cat <<TABLE
| target | unary calls/s | p50 (ms) | p99 (ms) | vs direct |
| --- | ---: | ---: | ---: | ---: |
| grpc-go server direct | $D_RPS | $D_P50 | $D_P99 | 1.00 |
| podgate sidecar (bearer JWT in metadata) | $P_RPS | $P_P50 | $P_P99 | $(ratio "$P_RPS" "$D_RPS") |

Median of $ROUNDS rounds, ghz -c$CONCURRENCY --connections $CONNECTIONS -n$CALLS, $(nproc) CPUs, load average before: $LOAD_BEFORE.
TABLE
