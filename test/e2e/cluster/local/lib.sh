# shellcheck shell=bash disable=SC2034 # the variables below are used by the scripts that source this file
# Shared settings and helpers for the local cluster provider. Source it; do not run it.
#
# The run's settings are defined once, in Go (test/e2e/framework/settings.go), and reach every script
# in its environment; the scripts require them. To run a script by hand:
#   eval "$(go run ./test/e2e/cmd/podgate-e2e env)"
#   $PODGATE_E2E_CACHE  built binaries and downloads, keyed by version; never removed by teardown
#   $PODGATE_E2E_STATE  everything a running cluster owns (PKI, etcd data, containerd root, PID files);
#                       teardown removes it
#   $PODGATE_E2E_LOGS   component logs, kept after teardown for post-mortems, emptied when run.sh starts a run
#   $CNI_BIN_DIR, $CNI_CONF_DIR  containerd's CNI directories (under the state), which the podgate-cni
#                       node agent installs into
#   $K8S_VERSION, $ETCD_VERSION, $TRAEFIK_VERSION (and its $TRAEFIK_SHA256), $COREDNS_VERSION,
#   $NODE_IP, $NODE_NAME, $SVC_CIDR, $DNS_IP, $API_URL

set -o errexit -o nounset -o pipefail

: "${PODGATE_E2E_CACHE:?is not set: run through make e2e, or see the top of lib.sh}"
: "${PODGATE_E2E_STATE:?is not set: run through make e2e, or see the top of lib.sh}"
: "${PODGATE_E2E_LOGS:?is not set: run through make e2e, or see the top of lib.sh}"
: "${CNI_BIN_DIR:?is not set: run through make e2e, or see the top of lib.sh}"
: "${CNI_CONF_DIR:?is not set: run through make e2e, or see the top of lib.sh}"
: "${K8S_VERSION:?is not set: run through make e2e, or see the top of lib.sh}"
: "${ETCD_VERSION:?is not set: run through make e2e, or see the top of lib.sh}"
: "${NODE_IP:?is not set: run through make e2e, or see the top of lib.sh}"
: "${NODE_NAME:?is not set: run through make e2e, or see the top of lib.sh}"
: "${SVC_CIDR:?is not set: run through make e2e, or see the top of lib.sh}"
: "${API_URL:?is not set: run through make e2e, or see the top of lib.sh}"
: "${TRAEFIK_VERSION:?is not set: run through make e2e, or see the top of lib.sh}"
: "${TRAEFIK_SHA256:?is not set: run through make e2e, or see the top of lib.sh}"
: "${COREDNS_VERSION:?is not set: run through make e2e, or see the top of lib.sh}"
: "${DNS_IP:?is not set: run through make e2e, or see the top of lib.sh}"
# Traefik is built from the source tarball in the shared third_party directory (test/e2e/traefik/build.sh).
# The tarball sits in shared/third_party beside the main checkout (for a worktree, beside the checkout
# that owns its .git).
: "${TRAEFIK_SRC:=$(dirname "$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --path-format=absolute --git-common-dir 2>/dev/null)")/../shared/third_party/traefik/traefik-$TRAEFIK_VERSION-src.tar.gz}"

# Addresses: only the benchmarking range 198.18.0.0/15, which nothing outside this machine routes to us.
NODE_BRIDGE=pg-node0      # empty bridge carrying the node IP (this kernel has no dummy netdev)
POD_BRIDGE=cni0
POD_CIDR=198.18.10.0/24
POD_GATEWAY=198.18.10.1
GUARD_TABLE=podgate_e2e_guard

K8S_BIN=$PODGATE_E2E_CACHE/kubernetes-$K8S_VERSION/bin
ETCD_BIN=$PODGATE_E2E_CACHE/etcd-$ETCD_VERSION/bin
COREDNS_BIN=$PODGATE_E2E_CACHE/coredns-$COREDNS_VERSION/bin
RUN=$PODGATE_E2E_STATE/run      # PID files and records of what existed before we started
PKI=$PODGATE_E2E_STATE/pki
CONTAINERD_DIR=$PODGATE_E2E_STATE/containerd
CONTAINERD_SOCK=$CONTAINERD_DIR/containerd.sock
KUBECTL=$K8S_BIN/kubectl
export KUBECONFIG=$PKI/admin.kubeconfig

# The cluster components, in start order; teardown stops them in reverse.
COMPONENTS="etcd kube-apiserver containerd kube-controller-manager kube-scheduler kubelet kube-proxy"

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ctr_() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# start NAME CMD...: run CMD in its own session, log to $PODGATE_E2E_LOGS/NAME.log, remember its PID.
# The log is appended to, after a line saying when this instance started: the fault tests restart
# Keycloak mid-run, and the log of the instance they stopped is what a post-mortem reads (run.sh
# empties the directory when a run starts).
start() {
	local name=$1; shift
	[[ -f $RUN/$name.pid ]] && kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null && die "$name already running (pid $(cat "$RUN/$name.pid"))"
	printf -- '--- %s started %s: %s\n' "$name" "$(date -u +%FT%TZ)" "$*" >>"$PODGATE_E2E_LOGS/$name.log"
	setsid "$@" >>"$PODGATE_E2E_LOGS/$name.log" 2>&1 </dev/null &
	echo $! >"$RUN/$name.pid"
	log "started $name (pid $!)"
}

# stop NAME...: SIGTERM the recorded processes together, SIGKILL whatever still runs after 10 s.
# start() runs each in its own session, so its PID is also its process group, and signalling the
# group reaches the children it forked too (kc.sh's java): never anything this run did not start.
stop() {
	local name pid names=() pids=()
	for name in "$@"; do
		[[ -f $RUN/$name.pid ]] || continue
		pid=$(cat "$RUN/$name.pid")
		if kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null; then
			names+=("$name") pids+=("$pid")
		else
			rm -f "$RUN/$name.pid"
		fi
	done
	((${#pids[@]})) || return 0
	local i alive
	for _ in $(seq 50); do
		alive=0
		for pid in "${pids[@]}"; do running "$pid" && alive=1; done
		((alive)) || break
		sleep 0.2
	done
	for i in "${!pids[@]}"; do
		if running "${pids[i]}"; then
			kill -KILL -- "-${pids[i]}" 2>/dev/null || kill -KILL "${pids[i]}" 2>/dev/null || true
			log "killed ${names[i]} (pid ${pids[i]}) after 10s"
		else
			log "stopped ${names[i]} (pid ${pids[i]})"
		fi
		rm -f "$RUN/${names[i]}.pid"
	done
}

# running PID: the process, or any process of its group, is still alive.
running() { kill -0 -- "-$1" 2>/dev/null || kill -0 "$1" 2>/dev/null; }

# waitfor DESCRIPTION TIMEOUT_SECONDS CMD...: poll CMD every 0.5 s until it succeeds.
waitfor() {
	local what=$1 timeout=$2; shift 2
	local start; start=$(date +%s)
	until "$@" >/dev/null 2>&1; do
		(($(date +%s) - start < timeout)) || { log "timed out after ${timeout}s waiting for $what"; return 1; }
		sleep 0.5
	done
	log "$what ready after $(($(date +%s) - start))s"
}
