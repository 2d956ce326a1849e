#!/usr/bin/env bash
# Tears down what up.sh (and keycloak.sh, and the tests' host processes) started and changed, using
# only what they recorded under $RUN: processes by PID file, then pod containers, mounts, network
# namespaces, links, iptables chains, nft tables, cgroups, directories and sysctls. Safe to run
# twice, after a partial start, or with nothing running. Logs in $PODGATE_E2E_LOGS are kept.
# Errors do not stop it: every step is attempted, and the exit code says whether all succeeded.
source "$(dirname "$0")/lib.sh"
set +o errexit
failed=0
try() { "$@" || { log "teardown step failed: $*"; failed=1; }; }

[[ -d $RUN ]] || { log "nothing to tear down ($RUN does not exist)"; exit 0; }

# 1. Anything the tests started on the host (nginx, a standalone sidecar, Keycloak) and the controllers,
#    so nothing recreates pods while they are being removed.
others=()
for f in "$RUN"/*.pid; do
	[[ -e $f ]] || continue
	name=$(basename "$f" .pid)
	[[ " $COMPONENTS " == *" $name "* ]] || others+=("$name")
done
stop "${others[@]}" kube-controller-manager kube-scheduler

# 2. Pods: let the kubelet stop them (that runs CNI DEL: veths and IP leases go away cleanly).
if [[ -f $RUN/kubelet.pid && -f $KUBECONFIG ]] && kill -0 "$(cat "$RUN/kubelet.pid")" 2>/dev/null; then
	timeout 40 "$KUBECTL" delete pods --all --all-namespaces --grace-period=0 --force --wait=true \
		--request-timeout=10s >/dev/null 2>&1 || log "not every pod was deleted through the API; removing the rest directly"
fi
stop kubelet kube-proxy

# 3. Whatever containers remain, while containerd can still stop their shims.
if [[ -S $CONTAINERD_SOCK ]]; then
	for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
	for _ in $(seq 20); do [[ -z $(ctr_ tasks ls -q 2>/dev/null) ]] && break; sleep 0.25; done
	for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$t" >/dev/null 2>&1; done
	for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$c" >/dev/null 2>&1; done
fi
stop containerd
# Shims outlive containerd by design; ours are the ones whose -address is our socket.
for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" 2>/dev/null); do
	kill -9 "$pid" 2>/dev/null && log "killed leftover shim $pid"
done
# Containers whose shim is gone (a run killed outright) keep running, re-parented to init: whatever
# is still in the kubelet's cgroups is a container of this cluster.
cgroup_procs() { find /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u; }
for _ in $(seq 25); do
	mapfile -t procs < <(cgroup_procs)
	((${#procs[@]})) || break
	log "killing container processes left in the kubepods cgroups: ${procs[*]}"
	kill -9 "${procs[@]}" 2>/dev/null
	sleep 0.2
done
stop kube-apiserver
stop etcd # after the API server, which would otherwise hang on its way out

# 4. Mounts under the state directory (deepest first) and the pod network namespaces we created.
while read -r m; do try umount -l "$m"; done < <(awk -v root="$PODGATE_E2E_STATE" 'index($2, root) == 1 {print $2}' /proc/self/mounts | sort -r)
if [[ -f $RUN/netns-before ]]; then
	for p in /var/run/netns/*; do
		[[ -e $p ]] || continue
		n=${p##*/}
		grep -qx "$n" "$RUN/netns-before" && continue
		umount "/var/run/netns/$n" 2>/dev/null
		try rm -f "/var/run/netns/$n"
	done
fi

# 5. Links: veths left on the pod bridge, then the bridges we created (their routes go with them).
# A veth also vanishes by itself once its pod's namespace is gone: only one still there is a failure.
gone() { ! ip link show "$1" >/dev/null 2>&1; }
for v in $(ip -o link show master "$POD_BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
	ip link del "$v" 2>/dev/null || gone "$v" || { log "teardown step failed: ip link del $v"; failed=1; }
done
if [[ -f $RUN/created-links ]]; then
	while read -r l; do ip link show "$l" >/dev/null 2>&1 && try ip link del "$l"; done <"$RUN/created-links"
fi
if nft list table inet "$GUARD_TABLE" >/dev/null 2>&1; then
	dropped=$(nft -j list table inet "$GUARD_TABLE" | jq '[.nftables[].rule // empty | .expr[].counter // empty | .packets] | add // 0')
	log "guard: $dropped packets from or to 198.18.0.0/15 stopped at the uplink during the run"
	nft delete table inet "$GUARD_TABLE"
fi

# 6. iptables: kube-proxy's own cleanup, then any KUBE-* chain that did not exist before (kubelet's canaries).
[[ -x $K8S_BIN/kube-proxy ]] && "$K8S_BIN/kube-proxy" --cleanup >"$PODGATE_E2E_LOGS/kube-proxy-cleanup.log" 2>&1
for ipt in iptables ip6tables; do
	before=$RUN/$ipt-chains-before
	[[ -f $before ]] || continue
	for t in filter nat mangle raw; do
		# Only KUBE-* chains: a container engine on the same host (the kind provider) owns the rest.
		new=$("$ipt-save" -t "$t" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p' | while read -r c; do grep -qx "$t $c" "$before" || echo "$c"; done)
		[[ -z $new ]] && continue
		# Unhook rules jumping to the new chains, then flush and delete them.
		"$ipt-save" -t "$t" 2>/dev/null | grep '^-A ' | while read -r rule; do
			for c in $new; do
				if [[ $rule == *" -j $c"* || $rule == *" -g $c"* ]]; then
					read -ra args <<<"${rule/#-A/-D}"
					"$ipt" -t "$t" "${args[@]}" 2>/dev/null
					break
				fi
			done
		done
		for c in $new; do "$ipt" -t "$t" -F "$c" 2>/dev/null; done
		for c in $new; do try "$ipt" -t "$t" -X "$c"; done
	done
done
# iptables-nft registers base chains (and tables) on first use; drop those that are empty and new.
# Both rulesets are read as nft's JSON: chains and tables by family, table and name.
if [[ -f $RUN/nft-before.json ]]; then
	nft -j list ruleset | jq -r --slurpfile before "$RUN/nft-before.json" '
		[$before[0].nftables[].chain // empty | [.family, .table, .name]] as $old
		| [.nftables[].rule // empty | [.family, .table, .chain]] as $used
		| .nftables[].chain // empty | [.family, .table, .name]
		| select(.[2] | test("^(INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING)$"))
		| select(. as $c | ($old | index([$c])) == null and ($used | index([$c])) == null)
		| @sh' | while read -r chain; do eval "nft delete chain $chain" 2>/dev/null; done
	nft -j list ruleset | jq -r --slurpfile before "$RUN/nft-before.json" '
		[$before[0].nftables[].table // empty | [.family, .name]] as $old
		| [.nftables[].chain // empty | [.family, .table]] as $withChains
		| .nftables[].table // empty | [.family, .name]
		| select(. as $t | ($old | index([$t])) == null and ($withChains | index([$t])) == null)
		| @sh' | while read -r table; do eval "nft delete table $table"; done
fi

# 7. Cgroups the kubelet created (cgroup v1 keeps one hierarchy per controller).
for h in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
	[[ -d $h ]] || continue
	find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null
	[[ -d $h ]] && { log "could not remove cgroup $h"; failed=1; }
done

# 8. Directories we created outside the state directory, and sysctls back to what they were.
if [[ -f $RUN/created-paths ]]; then
	while read -r p; do
		[[ -e $p ]] || continue
		if grep -q " $p/" /proc/self/mounts; then log "not removing $p: still has mounts"; failed=1; continue; fi
		try rm -rf "$p"
	done <"$RUN/created-paths"
fi
if [[ -f $RUN/sysctl-before ]]; then
	# ip_forward first: writing it resets the per-interface forwarding settings too.
	grep '^net.ipv4.ip_forward=' "$RUN/sysctl-before" | while IFS='=' read -r k v; do sysctl -qw "$k=$v"; done
	while IFS='=' read -r k v; do
		[[ $(sysctl -n "$k" 2>/dev/null | tr '\t' ' ') == "$v" ]] && continue
		try sysctl -qw "$k=$v" && log "restored $k=$v"
	done <"$RUN/sysctl-before"
fi

# 9. The state itself, unless something could not be undone: then its records stay for another try.
if ((failed)); then
	log "teardown finished with errors (see above); kept $RUN so that running it again can retry"
	exit 1
fi
try rm -rf "$PODGATE_E2E_STATE"
log "teardown complete"
