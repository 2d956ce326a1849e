#!/usr/bin/env bash
# Runs a real Keycloak for the e2e tests and the demo, from its distribution zip on Maven Central.
#   keycloak.sh fetch   download and unpack the distribution into the cache (skipped when present)
#   keycloak.sh start   start it in dev mode on $KEYCLOAK_ADDR, importing testdata/podgate-realm.json
#   keycloak.sh wait    block until /health/ready answers (timeout $KEYCLOAK_START_TIMEOUT seconds)
#   keycloak.sh stop    stop exactly the process `start` started
# Dev mode with an in-memory database: every start imports the realm afresh, nothing persists.
# --hostname makes the issuer http://$KEYCLOAK_ADDR:8080/realms/podgate for everyone (host, test
# client and pods alike), so no token ever carries an issuer another party cannot match.
source "$(dirname "$0")/../cluster/local/lib.sh"

: "${KEYCLOAK_VERSION:=26.7.3}"
: "${KEYCLOAK_ADDR:=$NODE_IP}"
: "${KEYCLOAK_START_TIMEOUT:=240}"
KC_HOME=$PODGATE_E2E_CACHE/keycloak/keycloak-$KEYCLOAK_VERSION
REALM_FILE=$(cd "$(dirname "$0")/.." && pwd)/testdata/podgate-realm.json
mkdir -p "$RUN" "$PODGATE_E2E_LOGS"

kc_fetch() {
	[[ -x $KC_HOME/bin/kc.sh ]] && { log "keycloak $KEYCLOAK_VERSION cached in $KC_HOME"; return; }
	local dir=$PODGATE_E2E_CACHE/keycloak zip
	zip=$dir/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip
	mkdir -p "$dir"
	if [[ ! -f $zip ]]; then
		log "downloading keycloak $KEYCLOAK_VERSION with maven"
		mvn -q -B dependency:copy "-Dartifact=org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" \
			"-DoutputDirectory=$dir.tmp"
		mv "$dir.tmp/$(basename "$zip")" "$zip"
		rmdir "$dir.tmp"
	fi
	# Unpack beside the final place and rename, so an interrupted unzip never looks cached.
	rm -rf "$KC_HOME.tmp"
	unzip -q "$zip" -d "$KC_HOME.tmp"
	mv "$KC_HOME.tmp/keycloak-$KEYCLOAK_VERSION" "$KC_HOME"
	rmdir "$KC_HOME.tmp"
	log "unpacked keycloak $KEYCLOAK_VERSION into $KC_HOME"
}

kc_start() {
	kc_fetch
	# Not a pipe into grep -q: under pipefail, ip dying of SIGPIPE after grep found the line fails the check.
	[[ $(ip -o addr show) == *"inet $KEYCLOAK_ADDR/"* ]] || die "no interface has $KEYCLOAK_ADDR; bring the cluster network up first"
	mkdir -p "$KC_HOME/data/import"
	rm -f "$KC_HOME"/data/import/*.json
	cp "$REALM_FILE" "$KC_HOME/data/import/podgate-realm.json"
	# The admin account exists only in this throwaway in-memory instance.
	export KC_BOOTSTRAP_ADMIN_USERNAME=admin KC_BOOTSTRAP_ADMIN_PASSWORD=admin
	start keycloak "$KC_HOME/bin/kc.sh" start-dev --import-realm --db=dev-mem \
		--http-host="$KEYCLOAK_ADDR" --http-port=8080 --hostname="http://$KEYCLOAK_ADDR:8080" \
		--health-enabled=true --metrics-enabled=false --http-management-port=9000 \
		--log-level=info,org.keycloak.events:debug
}

kc_wait() {
	waitfor "keycloak /health/ready" "$KEYCLOAK_START_TIMEOUT" \
		curl -sf "http://$KEYCLOAK_ADDR:9000/health/ready" ||
		{ tail -30 "$PODGATE_E2E_LOGS/keycloak.log" >&2; return 1; }
	waitfor "realm podgate" 30 curl -sf "http://$KEYCLOAK_ADDR:8080/realms/podgate/.well-known/openid-configuration"
}

case "${1:-}" in
fetch) kc_fetch ;;
start) kc_start ;;
wait) kc_wait ;;
up) kc_start && kc_wait ;;
stop) stop keycloak ;;
*) die "usage: $0 fetch|start|wait|up|stop" ;;
esac
