#!/usr/bin/env bash
# bench.sh - measure popgate against a direct connection to Dovecot, and
# popgate's TLS against HAProxy and stunnel, on this machine (loopback
# only), and print a Markdown report (see docs/BENCHMARKS.md).
#
# Usage: integration/bench.sh [quick|full] [SCENARIO...]
#   full   (default) the numbers of docs/BENCHMARKS.md; about 20 minutes
#   quick  short rounds for CI; a few minutes
#   SCENARIO  run only these: idle tls-idle idle-on-accept retr noop-rtt
#          noop-pipelined retr-pipelined logins concurrent tls-retr
#          scan-retr parser (default: all)
#
# It installs and starts the integration environment (setup.sh, start.sh),
# builds popgate and integration/popload, writes configurations for
# popgate, HAProxy and stunnel from integration/bench/*.in into a run
# directory, starts them, runs every popload scenario (each round visits
# direct, then popgate: A B A B ...), stops what it started by PID, and
# prints the report. Results stay in the run directory:
#   results.jsonl  one JSON line per scenario
#   report.md      the Markdown report
#   output.txt     everything popload printed
# Environment: POPGATE_BENCH_DIR (default /tmp/popgate-bench) holds run
# directories; BENCH_PORT_BASE (default 24100) is the first of the ten
# loopback ports used.
set -euo pipefail

MODE=${1:-full}
case $MODE in
quick | full) ;;
*)
	echo "usage: $0 [quick|full] [SCENARIO...]" >&2
	exit 2
	;;
esac
[ $# -gt 0 ] && shift
ONLY=" $* "
ALL=" idle tls-idle idle-on-accept retr noop-rtt noop-pipelined retr-pipelined logins concurrent tls-retr scan-retr parser "
for s in $ONLY; do
	case $ALL in
	*" $s "*) ;;
	*)
		echo "$0: unknown scenario $s; known:$ALL" >&2
		exit 2
		;;
	esac
done
# want NAME: NAME was asked for, or nothing was.
want() { [ "$ONLY" = "  " ] || case $ONLY in *" $1 "*) true ;; *) false ;; esac }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
log() { printf 'bench.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (like setup.sh and start.sh)"
bash "$HERE/setup.sh"
bash "$HERE/start.sh"
ENV_FILE=${POPGATE_IT_DIR:-/tmp/popgate-it}/env
env_get() { grep -m1 "^$1=" "$ENV_FILE" | cut -d= -f2-; }
POP3_ADDR=$(env_get POP3_ADDR)
CLAMD_TCP=$(env_get CLAMD_TCP)
CERT=$(env_get DOVECOT_CERT)
KEY=$(env_get DOVECOT_KEY)
CA=$(env_get DOVECOT_CA)
POP3S_ADDR=$(env_get POP3S_ADDR)
for v in POP3_ADDR CLAMD_TCP CERT KEY CA POP3S_ADDR; do
	[ -n "${!v}" ] || die "$ENV_FILE lacks $v"
done

# popgate needs a descriptor per client and per backend connection; the
# idle scenarios hold 10,000 sessions. Children inherit this limit.
ulimit -n 20000 || die "cannot raise the open-file limit to 20000 (hard limit: $(ulimit -Hn))"

BASE=${BENCH_PORT_BASE:-24100}
PLAIN_PORT=$((BASE + 0))
AFTERAUTH_PORT=$((BASE + 1))
SCAN_PORT=$((BASE + 2))
TLS_PORT=$((BASE + 3))
TLSIDLE_PORT=$((BASE + 4))
HAPROXY_PORT=$((BASE + 5))
STUNNEL_PORT=$((BASE + 6))
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }
for p in $PLAIN_PORT $AFTERAUTH_PORT $SCAN_PORT $TLS_PORT $TLSIDLE_PORT $HAPROXY_PORT $STUNNEL_PORT; do
	if port_open "$p"; then die "port 127.0.0.1:$p is in use; set BENCH_PORT_BASE"; fi
done

BENCH_DIR=${POPGATE_BENCH_DIR:-/tmp/popgate-bench}
mkdir -p "$BENCH_DIR"
RUN=$(mktemp -d "$BENCH_DIR/run-$(date +%Y%m%d-%H%M%S)-XXXX")
mkdir -p "$RUN/bin" "$RUN/spool"
RESULTS=$RUN/results.jsonl
OUTPUT=$RUN/output.txt
log "run directory $RUN ($MODE)"

(cd "$REPO" && go build -o "$RUN/bin/popgate" .) || die "building popgate failed"
(cd "$REPO" && go build -o "$RUN/bin/popload" ./integration/popload) || die "building popload failed"
POPLOAD=$RUN/bin/popload

render() { # render TEMPLATE OUT
	sed -e "s|@RUN@|$RUN|g" -e "s|@PLAIN_PORT@|$PLAIN_PORT|g" -e "s|@AFTERAUTH_PORT@|$AFTERAUTH_PORT|g" \
		-e "s|@SCAN_PORT@|$SCAN_PORT|g" -e "s|@TLS_PORT@|$TLS_PORT|g" -e "s|@TLSIDLE_PORT@|$TLSIDLE_PORT|g" \
		-e "s|@HAPROXY_PORT@|$HAPROXY_PORT|g" -e "s|@STUNNEL_PORT@|$STUNNEL_PORT|g" \
		-e "s|@POP3_ADDR@|$POP3_ADDR|g" -e "s|@CLAMD_TCP@|$CLAMD_TCP|g" \
		-e "s|@CERT@|$CERT|g" -e "s|@KEY@|$KEY|g" -e "s|@PEM@|$RUN/haproxy.pem|g" "$1" >"$2"
}
render "$HERE/bench/popgate.hcl.in" "$RUN/popgate.hcl"
render "$HERE/bench/haproxy.cfg.in" "$RUN/haproxy.cfg"
render "$HERE/bench/stunnel.conf.in" "$RUN/stunnel.conf"
(umask 077 && cat "$CERT" "$KEY" >"$RUN/haproxy.pem")
"$RUN/bin/popgate" validate -config "$RUN/popgate.hcl" >/dev/null || die "popgate rejects $RUN/popgate.hcl"
haproxy -c -q -f "$RUN/haproxy.cfg" || die "haproxy rejects $RUN/haproxy.cfg"

# Processes this script started, by PID; only these are ever stopped.
PG_PID= HA_PID= ST_PID=
stop() { # stop NAME PID: SIGTERM, wait up to 10 s, then SIGKILL
	local name=$1 pid=$2 i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	stop popgate "$PG_PID"
	stop haproxy "$HA_PID"
	stop stunnel "$ST_PID"
}
trap cleanup EXIT

wait_port() { # wait_port NAME PORT PID: up to 10 s
	local i
	for i in $(seq 1 100); do
		port_open "$2" && return 0
		kill -0 "$3" 2>/dev/null || die "$1 exited; see $RUN/$1.log"
		sleep 0.1
	done
	die "$1 does not accept connections on 127.0.0.1:$2 after 10 s; see $RUN/$1.log"
}

# start_popgate starts a fresh popgate, so memory readings start clean.
start_popgate() {
	stop popgate "$PG_PID"
	(cd "$RUN" && exec "$RUN/bin/popgate" run -config "$RUN/popgate.hcl" >>"$RUN/popgate.log" 2>&1) &
	PG_PID=$!
	wait_port popgate "$TLSIDLE_PORT" "$PG_PID"
	[ "$(readlink "/proc/$PG_PID/exe")" = "$RUN/bin/popgate" ] || die "pid $PG_PID is not popgate"
	wait_port popgate "$SCAN_PORT" "$PG_PID"
}

FAILED=0
run() { # run ARGS...: one popload scenario; a failure is reported at the end
	local st
	printf '\n+ popload %s\n' "$*" | tee -a "$OUTPUT"
	set +e
	"$POPLOAD" "$@" -json "$RESULTS" 2>&1 | tee -a "$OUTPUT" | grep -v '^{"scenario"'
	st=${PIPESTATUS[0]}
	set -e
	[ "$st" = 0 ] || FAILED=$((FAILED + 1))
}

if [ "$MODE" = quick ]; then
	R=3 NOOPS=1000 BATCHES=50 LOGIN_DUR=2s LOGIN_R=2 IDLE=2000 TLSIDLE=1000 ONACCEPT_IDLE=200
	CONC=100 CONC_DUR=5s CONC_R=1 TLS_R=3 SCAN_R=2
else
	R=10 NOOPS=5000 BATCHES=200 LOGIN_DUR=10s LOGIN_R=5 IDLE=10000 TLSIDLE=10000 ONACCEPT_IDLE=1000
	CONC=1000 CONC_DUR=60s CONC_R=3 TLS_R=10 SCAN_R=5
fi
DIRECT="-target direct=$POP3_ADDR"
LOADUSER="-user load000 -pass load-pw"
{
	echo "# popgate benchmark run ($MODE)"
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit: $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown) (popgate is built from the working tree)"
	echo "cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	echo "kernel: $(uname -r); $(go version)"
	echo "dovecot $(dovecot --version 2>/dev/null | cut -d' ' -f1); $(haproxy -v | head -1 | cut -d' ' -f1-3); $(stunnel4 -version 2>&1 | grep -m1 '^stunnel' | cut -d' ' -f1-2)"
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$RUN/machine.txt"

# Memory first, each with a fresh popgate.
if want idle; then
	start_popgate
	run idle -label "idle, after-auth (no backend connection)" -target popgate=127.0.0.1:$AFTERAUTH_PORT -pid popgate=$PG_PID -sessions $IDLE
fi
if want tls-idle; then
	start_popgate
	run tls-idle -label "tls-idle, after-auth" -target popgate=127.0.0.1:$TLSIDLE_PORT -pid popgate=$PG_PID -sessions $TLSIDLE -ca "$CA"
fi
if want idle-on-accept; then
	start_popgate
	run idle -label "idle, on-accept (with its Dovecot connection)" -target popgate=127.0.0.1:$PLAIN_PORT -pid popgate=$PG_PID -sessions $ONACCEPT_IDLE
fi
start_popgate
POPGATE="-target popgate=127.0.0.1:$PLAIN_PORT -pid popgate=$PG_PID"

want retr && run retr $DIRECT $POPGATE -user big -pass big-pw-5d0e -rounds $R
want noop-rtt && run noop-rtt $DIRECT $POPGATE $LOADUSER -rounds $R -count $NOOPS
want noop-pipelined && run noop-pipelined $DIRECT $POPGATE $LOADUSER -rounds $R -batches $BATCHES
want retr-pipelined && run retr-pipelined $DIRECT $POPGATE -user bob -pass bob-pw-91c2 -rounds $R
want logins && run logins $DIRECT $POPGATE -pass load-pw -concurrency 16 -duration $LOGIN_DUR -rounds $LOGIN_R
want concurrent && run concurrent $DIRECT $POPGATE -pass load-pw -sessions $CONC -duration $CONC_DUR -rounds $CONC_R

if want tls-retr; then
	(cd "$RUN" && exec haproxy -db -f "$RUN/haproxy.cfg" >"$RUN/haproxy.log" 2>&1) &
	HA_PID=$!
	(cd "$RUN" && exec stunnel4 "$RUN/stunnel.conf" >"$RUN/stunnel.out" 2>&1) &
	ST_PID=$!
	wait_port haproxy "$HAPROXY_PORT" "$HA_PID"
	wait_port stunnel "$STUNNEL_PORT" "$ST_PID"
	run tls-retr -target haproxy=127.0.0.1:$HAPROXY_PORT -target popgate=127.0.0.1:$TLS_PORT \
		-target stunnel=127.0.0.1:$STUNNEL_PORT -target dovecot-tls=$POP3S_ADDR \
		-pid haproxy=$HA_PID -pid popgate=$PG_PID -pid stunnel=$ST_PID -ca "$CA" \
		-user big -pass big-pw-5d0e -rounds $TLS_R
	stop haproxy "$HA_PID"
	stop stunnel "$ST_PID"
	HA_PID= ST_PID=
fi

if want scan-retr; then
	run scan-retr -plain 127.0.0.1:$PLAIN_PORT -scan 127.0.0.1:$SCAN_PORT -clamd "$CLAMD_TCP" -popgate-pid $PG_PID \
		-message 10MiB=virus:virus-pw-0c1d:4 -message 50MiB=big:big-pw-5d0e:1 -rounds $SCAN_R
fi
stop popgate "$PG_PID"
PG_PID=

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RUN/machine.txt"
{
	echo '```'
	cat "$RUN/machine.txt"
	echo '```'
	echo
	[ -s "$RESULTS" ] && "$POPLOAD" report "$RESULTS"
} >"$RUN/report.md"
if [ "$MODE" = full ] && want parser; then
	{
		echo
		echo "### Parser micro-benchmarks"
		echo
		echo '```'
		(cd "$REPO" && go test ./parser -run '^$' -bench . -benchmem 2>&1)
		echo '```'
	} >>"$RUN/report.md"
fi
printf '\n\n'
cat "$RUN/report.md"
log "report: $RUN/report.md; $FAILED scenario(s) failed"
[ "$FAILED" = 0 ]
