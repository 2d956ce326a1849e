#!/usr/bin/env bash
# Entry point of `make e2e`, `make demo` and `make demo-down`.
#   run.sh test   run the e2e suite (it builds, starts, tests and tears down the stack itself)
#   run.sh demo   bring the stack and the demo app up and leave them running
#   run.sh down   tear down whatever a demo or an interrupted run left
# Must run as root (the local provider changes host networking and runs a kubelet). Only one run at a
# time per machine: the stack's addresses and directories are fixed.
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/../.."
[[ $(id -u) == 0 ]] || { echo "run.sh: must run as root (the local cluster needs it)" >&2; exit 1; }
export PATH=$PATH:/usr/local/go/bin
# The settings (directories, versions, the node IP) are defined in Go; the scripts this run starts
# inherit them from here.
settings=$(go run ./test/e2e/cmd/podgate-e2e env)
eval "$settings"
cache=${PODGATE_E2E_CACHE:?} logs=${PODGATE_E2E_LOGS:?}
mkdir -p "$cache"
if [[ -z ${PODGATE_E2E_LOCKED:-} ]]; then
	# Re-run under the lock. -o: the lock's descriptor is not inherited, so the daemons a demo
	# leaves running do not keep holding it.
	rc=0
	PODGATE_E2E_LOCKED=1 flock -n -o -E 75 "$cache/lock" "$0" "$@" || rc=$?
	((rc == 75)) && echo "run.sh: another podgate e2e run holds $cache/lock" >&2
	exit "$rc"
fi

down() { go run ./test/e2e/cmd/podgate-e2e down; }

case "${1:-}" in
test)
	# The suite tears down on success, failure and Ctrl-C. If the test binary itself died (a -timeout
	# panic, SIGKILL), teardown runs here; on a clean exit it finds nothing left and does nothing.
	trap down EXIT
	rm -rf "$logs" && mkdir -p "$logs"
	# helm for the chart install, built from the Go module proxy into the e2e cache once per version.
	PODGATE_HELM=$(make --no-print-directory -s helm TOOLS="$cache/tools")
	export PODGATE_HELM
	# PODGATE_E2E_RUN: a go test -run pattern, to run a subset while developing (the stack comes up all the same).
	go test -tags e2e -count=1 -v -timeout "${PODGATE_E2E_TIMEOUT:-45m}" ${PODGATE_E2E_RUN:+-run "$PODGATE_E2E_RUN"} ./test/e2e/ 2>&1 | tee -i "$logs/e2e-test.log" # -i: Ctrl-C must not cut the teardown's output
	;;
demo) go run ./test/e2e/cmd/podgate-e2e demo ;;
down) down ;;
*)
	echo "usage: $0 test|demo|down" >&2
	exit 2
	;;
esac
