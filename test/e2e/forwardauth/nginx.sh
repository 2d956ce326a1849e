#!/usr/bin/env bash
# Runs Debian's nginx on the host as the forward-auth front of the e2e tests and the demo.
#   nginx.sh start LISTEN AUTH APP   e.g. start 198.18.255.1:8088 198.19.0.41:4180 198.19.0.42:80
#   nginx.sh stop
# Its PID file sits with the cluster's, so teardown stops it even if a test did not.
source "$(dirname "$0")/../cluster/local/lib.sh"
DIR=$PODGATE_E2E_STATE/nginx

case "${1:-}" in
start)
	(($# == 4)) || die "usage: $0 start LISTEN AUTH APP"
	mkdir -p "$DIR" "$RUN" "$PODGATE_E2E_LOGS"
	sed -e "s|@DIR@|$DIR|g" -e "s|@LOGS@|$PODGATE_E2E_LOGS|g" -e "s|@LISTEN@|$2|g" \
		-e "s|@AUTH@|$3|g" -e "s|@APP@|$4|g" "$(dirname "$0")/nginx.conf" >"$DIR/nginx.conf"
	nginx -t -q -c "$DIR/nginx.conf" -p "$DIR" -g 'daemon off;'
	start nginx nginx -c "$DIR/nginx.conf" -p "$DIR" -g 'daemon off;'
	waitfor "nginx on $2" 20 bash -c "exec 3<>/dev/tcp/${2%:*}/${2##*:}"
	;;
stop) stop nginx ;;
*) die "usage: $0 start LISTEN AUTH APP | stop" ;;
esac
