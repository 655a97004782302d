#!/usr/bin/env bash
# bench_auth_http.sh - logins/s through an nginx-compatible auth_http
# service: popgate (auth = ..., without and with cache_ttl) against nginx
# mail (auth_http, proxy_pass_error_message on) with the same service
# (integration/authsvc) in front of the same Dovecot, in one run; and the
# extra latency per login the service adds, with and without the cache.
# The auth-http scenario of bench.sh calls it; it also runs on its own
# (after setup.sh and start.sh).
#
# Usage: integration/bench_auth_http.sh [quick|full] [DIR] [POPGATE]
#   full     (default) 5 rounds of 10 s per target; quick: 2 rounds of 3 s
#   DIR      work directory (default: a new one under /tmp)
#   POPGATE  the popgate binary to measure (default: built from the tree)
#
# Ports (loopback): 14120 authsvc, 14121 nginx, 14122 popgate with the
# service, 14123 popgate with the service and cache_ttl, 14124 popgate
# after-auth without a service (the latency reference). The load users
# load000..load999 (password load-pw) of Dovecot A route through the
# service to Dovecot A. Everything started here is stopped by PID.
# Prints a Markdown summary; popload's JSON lines go to DIR/results.jsonl.
set -euo pipefail

MODE=${1:-full}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
DIR=${2:-$(mktemp -d /tmp/popgate-auth-http-XXXX)}
POPGATE=${3:-}
case $MODE in
quick) ROUNDS=2 DUR=3s LAT_DUR=2s ;;
full) ROUNDS=5 DUR=10s LAT_DUR=5s ;;
*)
	echo "usage: $0 [quick|full] [DIR] [POPGATE]" >&2
	exit 2
	;;
esac
log() { printf 'bench_auth_http.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}
mkdir -p "$DIR"
ENV_FILE=${POPGATE_IT_DIR:-/tmp/popgate-it}/env
POP3_ADDR=$(grep -m1 '^POP3_ADDR=' "$ENV_FILE" | cut -d= -f2-)
[ -n "$POP3_ADDR" ] || die "$ENV_FILE lacks POP3_ADDR: run integration/start.sh"
SVC=127.0.0.1:14120 NGINX=127.0.0.1:14121 PG=127.0.0.1:14122 PGCACHE=127.0.0.1:14123 PGSTATIC=127.0.0.1:14124

if ! [ -e /usr/lib/nginx/modules/ngx_mail_module.so ]; then
	log "installing nginx and libnginx-mod-mail"
	apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx libnginx-mod-mail >/dev/null ||
		die "cannot install nginx and libnginx-mod-mail"
fi
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)

if [ -z "$POPGATE" ]; then
	(cd "$REPO" && go build -o "$DIR/popgate" .)
	POPGATE=$DIR/popgate
fi
(cd "$REPO" && go build -o "$DIR/authsvc" ./integration/authsvc && go build -o "$DIR/popload" ./integration/popload)

PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	if [ -s "$DIR/nginx.pid" ]; then kill -QUIT "$(cat "$DIR/nginx.pid")" 2>/dev/null || true; fi
}
trap cleanup EXIT
# shellcheck disable=SC2016 # $1 is expanded by the inner bash
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/${1%:*}/${1#*:}"' _ "$1" 2>/dev/null; }
wait_port() {
	for _ in $(seq 1 100); do
		if port_open "$1"; then return 0; fi
		sleep 0.1
	done
	die "$1 did not open"
}
for a in $SVC $NGINX $PG $PGCACHE $PGSTATIC; do
	if port_open "$a"; then die "$a is in use"; fi
done

printf 'load* load-pw %s %s\n' "${POP3_ADDR%:*}" "${POP3_ADDR#*:}" >"$DIR/users"
"$DIR/authsvc" -listen "$SVC" -users "$DIR/users" >"$DIR/authsvc.log" 2>&1 &
PIDS+=($!)

cat >"$DIR/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_mail_module.so;
worker_processes auto;
pid $DIR/nginx.pid;
error_log $DIR/nginx-error.log warn;
events {
    worker_connections 4096;
}
mail {
    server_name localhost;
    auth_http $SVC/auth;
    proxy_pass_error_message on;
    server {
        listen $NGINX;
        protocol pop3;
        pop3_auth plain;
    }
}
CONF
"$NGINX_BIN" -c "$DIR/nginx.conf" -e "$DIR/nginx-error.log" || die "nginx did not start; see $DIR/nginx-error.log"

cat >"$DIR/popgate.hcl" <<CONF
state_dir = "$DIR/state"
log {
  level = "warn"
}
limits {
  max_sessions_per_ip = 0
}
listener "auth" {
  address = "$PG"
  connect = "after-auth"
  backend = "a"
  auth    = "dir"
  filters = []
}
listener "auth-cache" {
  address = "$PGCACHE"
  connect = "after-auth"
  backend = "a"
  auth    = "dir-cache"
  filters = []
}
listener "static" {
  address = "$PGSTATIC"
  connect = "after-auth"
  backend = "a"
  filters = []
}
auth_http "dir" {
  url = "http://$SVC/auth"
}
auth_http "dir-cache" {
  url       = "http://$SVC/auth"
  cache_ttl = "60s"
}
backend "a" {
  address = "$POP3_ADDR"
}
CONF
"$POPGATE" run -config "$DIR/popgate.hcl" >"$DIR/popgate.log" 2>&1 &
PIDS+=($!)
PGPID=$!
for a in $SVC $NGINX $PG $PGCACHE $PGSTATIC; do wait_port "$a"; done

"$DIR/popload" logins -label "logins/s through auth_http, concurrency 16" \
	-target nginx=$NGINX -target popgate=$PG -target popgate-cache=$PGCACHE -subject popgate,popgate-cache \
	-pid popgate=$PGPID -pid popgate-cache=$PGPID \
	-pass load-pw -concurrency 16 -duration $DUR -rounds $ROUNDS -warmup 1 -json "$DIR/results.jsonl" | tee "$DIR/output.txt"
"$DIR/popload" logins -label "login latency, concurrency 1" \
	-target static=$PGSTATIC -target popgate=$PG -target popgate-cache=$PGCACHE -subject popgate,popgate-cache \
	-pass load-pw -concurrency 1 -duration $LAT_DUR -rounds $ROUNDS -warmup 1 -json "$DIR/results.jsonl" | tee -a "$DIR/output.txt"
log "service requests: $(curl -s "http://$SVC/requests")"

python3 - "$DIR/results.jsonl" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = lambda r, n: next(s["median"] for s in r["series"] if s["name"] == n)
thr, lat = rs[-2], rs[-1]
n, p, pc = med(thr, "nginx"), med(thr, "popgate"), med(thr, "popgate-cache")
print("| logins/s, concurrency 16 (median of %d rounds) | nginx mail | popgate | popgate, cache_ttl |" % thr["rounds"])
print("|---|---|---|---|")
print("| through authsvc | %.0f | %.0f (%.2fx) | %.0f (%.2fx) |" % (n, p, p / n, pc, pc / n))
s, q, qc = med(lat, "static"), med(lat, "popgate"), med(lat, "popgate-cache")
ms = lambda r: 1000.0 / r
print()
print("| one login at a time | no service | service | service, cache_ttl |")
print("|---|---|---|---|")
print("| ms per login (1000 / logins/s) | %.3f | %.3f | %.3f |" % (ms(s), ms(q), ms(qc)))
print("| extra latency of the service | - | %+.3f ms | %+.3f ms |" % (ms(q) - ms(s), ms(qc) - ms(s)))
print()
print("target: popgate >= 1.2x nginx: %s (%.2fx)" % ("met" if p / n >= 1.2 else "MISSED", p / n))
PY
