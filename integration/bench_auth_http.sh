#!/usr/bin/env bash
# bench_auth_http.sh - logins/s through an nginx-compatible auth_http
# service: popgate (auth = ..., without and with cache_ttl) against nginx
# mail (auth_http, proxy_pass_error_message on) with the same service
# (integration/authsvc) in front of the same servers, in one run; and the
# extra latency per login the service adds, with and without the cache.
# Two backends: authsvc's trivial POP3 server, which takes any login at
# once, so the figures are the proxies' and the service's cost; and
# Dovecot A, the real thing, whose password check bounds every proxy.
# The auth-http scenario of bench.sh calls it; it also runs on its own
# (after setup.sh and start.sh).
#
# Usage: integration/bench_auth_http.sh [quick|full] [DIR] [POPGATE]
#   full     (default) 5 rounds of 10 s per target; quick: 2 rounds of 3 s
#   DIR      work directory (default: a new one under /tmp)
#   POPGATE  the popgate binary to measure (default: built from the tree)
#
# Ports (loopback): 14120 authsvc, 14121 nginx, 14122 popgate with the
# service, 14123 popgate with the service and cache_ttl, 14124 and 14126
# popgate after-auth without a service in front of Dovecot A and of the
# trivial server (the latency references), 14125 authsvc's trivial POP3
# server. The service routes fast000..fast999 to the trivial server and
# load000..load999 (Dovecot A's load users, password load-pw) to Dovecot A.
# Everything started here is stopped by PID (nginx by its pid file).
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
TRIVIAL=127.0.0.1:14125 PGSTATICT=127.0.0.1:14126

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
for a in $SVC $NGINX $PG $PGCACHE $PGSTATIC $TRIVIAL $PGSTATICT; do
	if port_open "$a"; then die "$a is in use"; fi
done

{
	printf 'load* load-pw %s %s\n' "${POP3_ADDR%:*}" "${POP3_ADDR#*:}"
	printf 'fast* load-pw %s %s\n' "${TRIVIAL%:*}" "${TRIVIAL#*:}"
} >"$DIR/users"
"$DIR/authsvc" -listen "$SVC" -users "$DIR/users" -pop3 "$TRIVIAL" >"$DIR/authsvc.log" 2>&1 &
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
listener "static-trivial" {
  address = "$PGSTATICT"
  connect = "after-auth"
  backend = "t"
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
backend "t" {
  address = "$TRIVIAL"
}
CONF
"$POPGATE" run -config "$DIR/popgate.hcl" >"$DIR/popgate.log" 2>&1 &
PIDS+=($!)
PGPID=$!
for a in $SVC $NGINX $PG $PGCACHE $PGSTATIC $TRIVIAL $PGSTATICT; do wait_port "$a"; done

logins() { # logins LABEL ARGS...: one popload logins run
	local label=$1
	shift
	echo "load average before $label: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$DIR/output.txt" >&2
	# A failed login (an overloaded Dovecot) fails the scenario, not the run.
	"$DIR/popload" logins -label "$label" -pass load-pw -rounds $ROUNDS -warmup 1 -json "$DIR/results.jsonl" "$@" |
		tee -a "$DIR/output.txt" >&2 || { log "$label: popload reported errors (see $DIR/output.txt)"; FAILED=$((FAILED + 1)); }
}
FAILED=0
logins "throughput-trivial" -user-prefix fast -concurrency 16 -duration $DUR \
	-target nginx=$NGINX -target popgate=$PG -target popgate-cache=$PGCACHE -target direct=$TRIVIAL \
	-subject popgate,popgate-cache -pid popgate=$PGPID -pid popgate-cache=$PGPID
logins "throughput-dovecot" -user-prefix load -concurrency 16 -duration $DUR \
	-target nginx=$NGINX -target popgate=$PG -target popgate-cache=$PGCACHE -target direct=$POP3_ADDR \
	-subject popgate,popgate-cache
logins "latency-trivial" -user-prefix fast -concurrency 1 -duration $LAT_DUR \
	-target static=$PGSTATICT -target popgate=$PG -target popgate-cache=$PGCACHE -target nginx=$NGINX \
	-subject popgate,popgate-cache
logins "latency-dovecot" -user-prefix load -concurrency 1 -duration $LAT_DUR \
	-target static=$PGSTATIC -target popgate=$PG -target popgate-cache=$PGCACHE -target nginx=$NGINX \
	-subject popgate,popgate-cache
log "service requests: $(curl -s "http://$SVC/requests")"
(cd "$REPO" && go test -run '^$' -bench Authenticate -benchtime 20000x ./authhttp/) | tee "$DIR/gobench.txt" >&2

python3 - "$DIR/results.jsonl" "$DIR/gobench.txt" <<'PY'
import json, re, sys
rs = {r["label"]: r for r in (json.loads(l) for l in open(sys.argv[1]) if l.strip())}
need = ("throughput-trivial", "throughput-dovecot", "latency-trivial", "latency-dovecot")
missing = [l for l in need if l not in rs]
if missing:
    sys.exit("no results for " + ", ".join(missing))
med = lambda r, n: next(s["median"] for s in r["series"] if s["name"] == n)
rng = lambda r, n: next("%.0f-%.0f" % (s["min"], s["max"]) for s in r["series"] if s["name"] == n)
# ratios: the median of per-round ratios, and their range (popload's derived series)
ratio = lambda r, n: next("%.2fx (%.2f-%.2f)" % (s["median"], s["min"], s["max"]) for s in r["derived"] if s["name"] == n)
print("| logins/s, 16 workers (median of %d rounds, min-max) | direct | nginx mail | popgate | popgate, cache_ttl | popgate / nginx, per round | cached / nginx, per round |" % rs["throughput-trivial"]["rounds"])
print("|---|---|---|---|---|---|---|")
for label, name in (("throughput-trivial", "trivial POP3 server"), ("throughput-dovecot", "Dovecot A")):
    r = rs[label]
    n, p, pc = med(r, "nginx"), med(r, "popgate"), med(r, "popgate-cache")
    err = " (%d failed logins)" % r["errors"] if r["errors"] else ""
    print("| %s%s | %.0f (%s) | %.0f (%s) | %.0f (%s) | %.0f (%s) | %s | %s |" % (name, err, med(r, "direct"), rng(r, "direct"),
          n, rng(r, "nginx"), p, rng(r, "popgate"), pc, rng(r, "popgate-cache"), ratio(r, "popgate / nginx"), ratio(r, "popgate-cache / nginx")))
print()
print("| ms per login, one at a time (1000 / logins/s) | popgate, no service | popgate + service | popgate + service, cache_ttl | nginx + service |")
print("|---|---|---|---|---|")
for label, name in (("latency-trivial", "trivial POP3 server"), ("latency-dovecot", "Dovecot A")):
    r = rs[label]
    ms = lambda n: 1000.0 / med(r, n)
    s = ms("static")
    print("| %s | %.3f | %.3f (%+.3f) | %.3f (%+.3f) | %.3f |" % (name, s, ms("popgate"), ms("popgate") - s,
          ms("popgate-cache"), ms("popgate-cache") - s, ms("nginx")))
print()
for line in open(sys.argv[2]):
    m = re.match(r"BenchmarkAuthenticate/(\S+)-\d+\s+\d+\s+([\d.]+) ns/op", line)
    if m:
        print("authhttp client alone, loopback service (%s): %.1f us per login" % (m.group(1), float(m.group(2)) / 1000))
r = rs["throughput-trivial"]
x = next(s["median"] for s in r["derived"] if s["name"] == "popgate / nginx")
print()
print("target popgate >= 1.2x nginx (trivial server, no cache): %s (%.2fx)" % ("met" if x >= 1.2 else "MISSED", x))
PY
[ "$FAILED" = 0 ] || die "$FAILED scenarios reported errors"
