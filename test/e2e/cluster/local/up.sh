#!/usr/bin/env bash
# Brings up a single-node Kubernetes cluster as plain processes: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd, kubelet and kube-proxy (iptables mode).
#   up.sh [all]       everything below, in order
#   up.sh network     record the host's state, then the node IP, pod bridge, service route, nft guard, sysctls
#   up.sh containerd  containerd alone, so images.sh can import the images (the pause image first of all)
#   up.sh cluster     control plane, node, kube-proxy (with the PKI the framework wrote), cluster DNS;
#                     waits until the node is Ready and CoreDNS answers
# Every change to the host is recorded under $RUN first, so down.sh can undo exactly that.
source "$(dirname "$0")/lib.sh"

# Paths kubelet 1.34 and containerd 1.6 use whatever the flags say; down.sh removes the ones we created.
HARDCODED_PATHS="/var/lib/kubelet /var/lib/cni /var/log/containers /var/log/pods /run/containerd /var/run/netns /run/mount"
# Sysctls this run, kubelet or kube-proxy may change; down.sh restores each one that differs.
SYSCTLS="net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
	net.ipv4.conf.all.route_localnet net.ipv4.conf.all.forwarding net.ipv4.conf.default.forwarding
	net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
	net.netfilter.nf_conntrack_tcp_timeout_close_wait net.netfilter.nf_conntrack_tcp_be_liberal
	vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes"

record_host() {
	mkdir -p "$RUN" "$PODGATE_E2E_LOGS"
	[[ -f $RUN/recorded ]] && return
	local p k
	for p in $HARDCODED_PATHS; do [[ -e $p ]] || echo "$p"; done >"$RUN/created-paths"
	for k in $SYSCTLS; do sysctl -n "$k" >/dev/null 2>&1 && printf '%s=%s\n' "$k" "$(sysctl -n "$k" | tr '\t' ' ')"; done >"$RUN/sysctl-before"
	ls /var/run/netns >"$RUN/netns-before" 2>/dev/null || true
	nft -j list ruleset >"$RUN/nft-before.json" 2>/dev/null || echo '{"nftables": []}' >"$RUN/nft-before.json"
	for t in filter nat mangle raw; do iptables-save -t "$t" 2>/dev/null | sed -n 's/^:\([^ ]*\) .*/'"$t"' \1/p'; done >"$RUN/iptables-chains-before"
	for t in filter nat mangle raw; do ip6tables-save -t "$t" 2>/dev/null | sed -n 's/^:\([^ ]*\) .*/'"$t"' \1/p'; done >"$RUN/ip6tables-chains-before"
	: >"$RUN/created-links"
	touch "$RUN/recorded"
}

setsysctl() { sysctl -qw "$1=$2"; }

network() {
	record_host
	# The node IP lives on an empty bridge: this kernel has no dummy netdev, and a bridge with no
	# ports is just as inert. The pod bridge is pre-created so teardown knows it is ours.
	if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
		ip link add "$NODE_BRIDGE" type bridge && echo "$NODE_BRIDGE" >>"$RUN/created-links"
		ip addr add "$NODE_IP/32" dev "$NODE_BRIDGE"
		ip link set "$NODE_BRIDGE" up
	fi
	if ! ip link show "$POD_BRIDGE" >/dev/null 2>&1; then
		ip link add "$POD_BRIDGE" type bridge && echo "$POD_BRIDGE" >>"$RUN/created-links"
		ip addr add "$POD_GATEWAY/${POD_CIDR#*/}" dev "$POD_BRIDGE"
		ip link set "$POD_BRIDGE" up
	fi
	# A ClusterIP packet kube-proxy has not NATed (yet) must never follow the default route out.
	ip route replace "$SVC_CIDR" dev "$NODE_BRIDGE"
	# Pod -> Service -> other pod needs forwarding and bridged traffic through iptables.
	setsysctl net.ipv4.ip_forward 1
	setsysctl net.bridge.bridge-nf-call-iptables 1
	# Guard: nothing from or to 198.18.0.0/15 ever leaves through an interface with a default route.
	local uplinks
	uplinks=$( (ip -4 route show default; ip -6 route show default) | awk '{for (i = 1; i < NF; i++) if ($i == "dev") print "\"" $(i + 1) "\""}' | sort -u | paste -sd, -)
	[[ -n $uplinks ]] || uplinks='"eth0"'
	nft -f - <<-NFT
		table inet $GUARD_TABLE
		delete table inet $GUARD_TABLE
		table inet $GUARD_TABLE {
			chain forward { type filter hook forward priority -300; policy accept;
				oifname { $uplinks } ip saddr 198.18.0.0/15 counter drop
				oifname { $uplinks } ip daddr 198.18.0.0/15 counter drop
			}
			chain output { type filter hook output priority -300; policy accept;
				oifname { $uplinks } ip saddr 198.18.0.0/15 counter drop
				oifname { $uplinks } ip daddr 198.18.0.0/15 counter drop
			}
		}
	NFT
	log "network: node IP $NODE_IP on $NODE_BRIDGE, pods $POD_CIDR on $POD_BRIDGE, services $SVC_CIDR, guard on $uplinks"
}

# The PKI (CA, component certificates and kubeconfigs, service-account key) is written in Go by the
# e2e framework before `up.sh cluster` (test/e2e/framework/pki.go); this only checks it is there.
pki() {
	[[ -f $PKI/done ]] || die "no cluster PKI in $PKI: the e2e framework writes it before up.sh cluster"
}

control_plane() {
	local data=$PODGATE_E2E_STATE/etcd
	mkdir -p "$data" && chmod 700 "$data"
	start etcd "$ETCD_BIN/etcd" --name podgate-e2e --data-dir "$data" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster podgate-e2e=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
		--unsafe-no-fsync=true --snapshot-count=10000 --log-level=warn
	waitfor etcd 60 curl -sf http://127.0.0.1:2381/health
	# Bound to the node IP (not loopback) and advertised there, so the `kubernetes` Service's endpoint
	# is an address pods can route to: the injector talks to the API server through that Service.
	start kube-apiserver "$K8S_BIN/kube-apiserver" \
		--bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port=6443 \
		--etcd-servers=http://127.0.0.1:2379 \
		--tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
		--client-ca-file="$PKI/ca.crt" \
		--kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
		--kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
		--kubelet-preferred-address-types=InternalIP \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
		--service-cluster-ip-range="$SVC_CIDR" \
		--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
		--allow-privileged=true --profiling=false --v=1
	waitfor kube-apiserver 120 curl -sf --cacert "$PKI/ca.crt" "$API_URL/readyz"
	start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
		--kubeconfig="$PKI/controller-manager.kubeconfig" \
		--authentication-kubeconfig="$PKI/controller-manager.kubeconfig" \
		--authorization-kubeconfig="$PKI/controller-manager.kubeconfig" \
		--bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false \
		--service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
		--use-service-account-credentials=true \
		--cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
		--service-cluster-ip-range="$SVC_CIDR" --allocate-node-cidrs=false --profiling=false --v=1
	start kube-scheduler "$K8S_BIN/kube-scheduler" --kubeconfig="$PKI/scheduler.kubeconfig" \
		--authentication-kubeconfig="$PKI/scheduler.kubeconfig" \
		--authorization-kubeconfig="$PKI/scheduler.kubeconfig" \
		--bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false --profiling=false --v=1
}

containerd_up() {
	local c=$CONTAINERD_DIR cni=$PODGATE_E2E_STATE/cni p
	[[ -f $RUN/containerd.pid ]] && kill -0 "$(cat "$RUN/containerd.pid")" 2>/dev/null && return
	mkdir -p "$c" "$CNI_CONF_DIR" "$CNI_BIN_DIR" "$cni/ipam"
	# A bin dir of our own, holding Debian's plugins as links: the podgate-cni node agent installs
	# the plugin into it (as it would into /opt/cni/bin), and teardown removes it with the state.
	for p in /usr/lib/cni/*; do ln -sfn "$p" "$CNI_BIN_DIR/"; done
	cat >"$CNI_CONF_DIR/10-podgate-e2e.conflist" <<-CNI
		{
		  "cniVersion": "0.4.0",
		  "name": "podgate-e2e",
		  "plugins": [
		    {"type": "bridge", "bridge": "$POD_BRIDGE", "isGateway": true, "isDefaultGateway": true,
		     "ipMasq": false, "hairpinMode": true,
		     "ipam": {"type": "host-local", "dataDir": "$cni/ipam",
		              "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY"}]]}},
		    {"type": "loopback"}
		  ]
		}
	CNI
	# restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, so runc cannot lower oom_score_adj
	# and every sandbox would fail with "can't get final child's PID from pipe: EOF".
	cat >"$c/config.toml" <<-TOML
		version = 2
		root = "$c/root"
		state = "$c/state"
		oom_score = 0
		[grpc]
		  address = "$CONTAINERD_SOCK"
		[ttrpc]
		  address = "$CONTAINERD_SOCK.ttrpc"
		[debug]
		  address = ""
		[metrics]
		  address = ""
		[plugins."io.containerd.internal.v1.opt"]
		  path = "$c/opt"
		[plugins."io.containerd.grpc.v1.cri"]
		  sandbox_image = "podgate.local/pause:e2e"
		  enable_selinux = false
		  restrict_oom_score_adj = true
		  [plugins."io.containerd.grpc.v1.cri".containerd]
		    snapshotter = "overlayfs"
		    default_runtime_name = "runc"
		    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
		      runtime_type = "io.containerd.runc.v2"
		      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
		        SystemdCgroup = false
		        Root = "$c/runc"
		  [plugins."io.containerd.grpc.v1.cri".cni]
		    bin_dir = "$CNI_BIN_DIR"
		    conf_dir = "$CNI_CONF_DIR"
	TOML
	start containerd containerd --config "$c/config.toml"
	waitfor containerd 30 ctr --address "$CONTAINERD_SOCK" version
}

node() {
	local k=$PODGATE_E2E_STATE/kubelet
	mkdir -p "$k/root" "$k/pods"
	# cgroupfs and failCgroupV1=false: this machine runs cgroup v1. oomScoreAdj 0: see containerd.
	# clusterDNS: pods (dnsPolicy ClusterFirst) get CoreDNS as their only nameserver, with the cluster's
	# search domains. resolvConf "": the host's resolvers never reach a pod, and CoreDNS (dnsPolicy
	# Default) forwards nowhere, so nothing in a pod can resolve (and reach) a name outside the machine.
	cat >"$k/config.yaml" <<-YAML
		apiVersion: kubelet.config.k8s.io/v1beta1
		kind: KubeletConfiguration
		cgroupDriver: cgroupfs
		failCgroupV1: false
		failSwapOn: false
		oomScoreAdj: 0
		makeIPTablesUtilChains: false
		containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
		address: $NODE_IP
		port: 10250
		healthzBindAddress: 127.0.0.1
		healthzPort: 10248
		readOnlyPort: 0
		podLogsDir: $k/pods
		authentication:
		  anonymous: {enabled: false}
		  webhook: {enabled: true}
		  x509: {clientCAFile: $PKI/ca.crt}
		authorization: {mode: Webhook}
		clusterDomain: cluster.local
		clusterDNS: [$DNS_IP]
		resolvConf: ""
		serializeImagePulls: false
		imageGCHighThresholdPercent: 100
		imageGCLowThresholdPercent: 99
		evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
		maxPods: 110
	YAML
	start kubelet "$K8S_BIN/kubelet" --config="$k/config.yaml" --kubeconfig="$PKI/kubelet.kubeconfig" \
		--root-dir="$k/root" --cert-dir="$k/pki" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1
	# Zero conntrack settings and a node-IP-only NodePort range keep kube-proxy's sysctl changes minimal.
	start kube-proxy "$K8S_BIN/kube-proxy" --kubeconfig="$PKI/kube-proxy.kubeconfig" --proxy-mode=iptables \
		--cluster-cidr="$POD_CIDR" --hostname-override="$NODE_NAME" \
		--nodeport-addresses="$NODE_IP/32" --conntrack-max-per-core=0 \
		--conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 \
		--metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256 --v=1
	waitfor "node $NODE_NAME Ready" 180 node_ready
	waitfor kube-proxy 60 curl -sf http://127.0.0.1:10256/healthz
	waitfor "default/default service account" 60 "$KUBECTL" -n default get serviceaccount default
}

# dns: CoreDNS as kubeadm deploys it (RBAC, ConfigMap, Deployment, the kube-dns Service on $DNS_IP).
dns() {
	sed "s/@DNS_IP@/$DNS_IP/g" "$(dirname "$0")/coredns/coredns.yaml" | "$KUBECTL" apply -f - >/dev/null
	# Ready means the kubernetes plugin has synced Services and endpoints (its /ready says so).
	waitfor "CoreDNS on $DNS_IP" 120 "$KUBECTL" -n kube-system rollout status deployment/coredns --timeout=1s
}

node_ready() {
	[[ $("$KUBECTL" get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

cluster() {
	record_host
	pki
	control_plane
	containerd_up
	node
	dns
	log "cluster up: KUBECONFIG=$KUBECONFIG"
}

case "${1:-all}" in
network) network ;;
containerd) record_host; containerd_up ;;
cluster) cluster ;;
all) network; cluster ;;
*) die "usage: $0 [all|network|containerd|cluster]" ;;
esac
