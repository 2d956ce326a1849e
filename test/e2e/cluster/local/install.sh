#!/usr/bin/env bash
# Installs the Debian packages the local cluster, the image builds, Keycloak and the forward-auth test
# need. Idempotent: installs only what is missing, so a warm machine spends no time here.
# Package services are never started (policy-rc.d): the e2e run starts its own processes, with its
# own sockets and state, and stops exactly those.
source "$(dirname "$0")/lib.sh"

# command-to-package map: a package is installed when its command is missing.
declare -A WANT=(
	[containerd]=containerd [runc]=runc [/usr/lib/cni/bridge]=containernetworking-plugins
	[iptables]=iptables [conntrack]=conntrack [socat]=socat [ethtool]=ethtool [ebtables]=ebtables
	[nft]=nftables [buildah]=buildah [nginx]=nginx [curl]=curl [unzip]=unzip [openssl]=openssl
	[pgrep]=procps [sysctl]=procps [jq]=jq [shellcheck]=shellcheck
	[nsenter]=util-linux [ip]=iproute2 [mvn]=maven [java]=openjdk-17-jre-headless [flock]=util-linux
)
missing=()
for cmd in "${!WANT[@]}"; do
	if [[ $cmd == /* ]]; then [[ -e $cmd ]] && continue; else command -v "$cmd" >/dev/null && continue; fi
	missing+=("${WANT[$cmd]}")
done
if ((${#missing[@]} == 0)); then
	log "all packages present"
	exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
log "installing: ${missing[*]}"
policy=/usr/sbin/policy-rc.d
saved=""
if [[ -e $policy ]]; then saved=$(mktemp); cp -p "$policy" "$saved"; fi
restore_policy() { if [[ -n $saved ]]; then mv "$saved" "$policy"; else rm -f "$policy"; fi; }
trap restore_policy EXIT
printf '#!/bin/sh\n# podgate e2e: never start package services\nexit 101\n' >"$policy"
chmod +x "$policy"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
log "installed: ${missing[*]}"
