#!/usr/bin/env bash
# bench.sh - measure popgate, with no filters and with the audit filter on,
# against a direct connection to Dovecot and against HAProxy (TCP mode) in
# the same run, and popgate's TLS against HAProxy's and stunnel's, on this
# machine (loopback only); print a Markdown report (docs/BENCHMARKS.md).
#
# Usage: integration/bench.sh [quick|full|profile] [SCENARIO...]
#   full     (default) the numbers of docs/BENCHMARKS.md; about 20 minutes
#   quick    short rounds, for CI; a few minutes
#   profile  no figures: CPU profiles (pprof) of popgate while each named
#            scenario loads the listener without filters, then the one with
#            audit, and heap profiles of idle TLS sessions in popgate and in
#            a minimal Go TLS server; profiles and `go tool pprof -top`
#            text stay in the run directory
#   SCENARIO  run only these: idle tls-idle idle-on-accept floor retr
#          noop-rtt noop-pipelined retr-pipelined retr-pipelined-uidl
#          logins concurrent tls-retr scan-retr parser audit-search auth-http
#          fleet (default: all; for
#          profile: noop-pipelined retr-pipelined retr-pipelined-uidl retr
#          noop-rtt concurrent logins tls-retr tls-idle)
#
# Every plaintext scenario's round visits direct Dovecot, popgate (listener
# "plain", no filters), popgate-audit (listener "plain-audit", filter
# "audit" { chain = true }) and HAProxy's plaintext TCP frontend, in that
# order (A B C D A B C D ...); TLS RETR visits HAProxy's TLS frontend,
# popgate's TLS listeners without and with audit, stunnel and Dovecot's own
# POP3S. popload reports medians and ranges over rounds, ratios taken per
# round.
#
# The fleet scenario (integration/bench_fleet.sh) runs two popgate
# instances behind HAProxy (contrib/haproxy.cfg) with 1,000 active and
# 5,000 idle sessions, against one instance, one instance behind HAProxy
# and direct Dovecot, in the same run.
#
# It installs and starts the integration environment (setup.sh, start.sh),
# builds popgate and integration/popload, writes configurations for
# popgate, HAProxy and stunnel from integration/bench/*.in into a run
# directory, starts them, runs the popload scenarios, stops what it started
# by PID, verifies the audit trail's hash chain, and prints the report.
# Results stay in the run directory:
#   results.jsonl  one JSON line per scenario
#   report.md      the Markdown report
#   output.txt     everything popload printed
#   machine.txt    machine, versions, load averages before each scenario
# The audit trail (audit.jsonl, up to a few GB in a full run) is removed
# after its chain is verified unless BENCH_KEEP_AUDIT=1.
# Environment: POPGATE_BENCH_DIR (default /tmp/popgate-bench) holds run
# directories; BENCH_PORT_BASE (default 24100) is the first of the sixteen
# loopback ports used; POPGATE_BENCH_BIN names a popgate binary to measure
# instead of building the working tree (e.g. an older commit's, to compare;
# not with profile).
set -euo pipefail

MODE=${1:-full}
case $MODE in
quick | full | profile) ;;
*)
	echo "usage: $0 [quick|full|profile] [SCENARIO...]" >&2
	exit 2
	;;
esac
[ $# -gt 0 ] && shift
ONLY=" $* "
ALL=" idle tls-idle idle-on-accept floor retr noop-rtt noop-pipelined retr-pipelined retr-pipelined-uidl logins concurrent tls-retr scan-retr parser audit-search auth-http fleet "
for s in $ONLY; do
	case $ALL in
	*" $s "*) ;;
	*)
		echo "$0: unknown scenario $s; known:$ALL" >&2
		exit 2
		;;
	esac
done
if [ "$MODE" = profile ] && [ "$ONLY" = "  " ]; then
	ONLY=" noop-pipelined retr-pipelined retr-pipelined-uidl retr noop-rtt concurrent logins tls-retr tls-idle "
fi
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
PLAIN_AUDIT_PORT=$((BASE + 7))
AFTERAUTH_AUDIT_PORT=$((BASE + 8))
TLS_AUDIT_PORT=$((BASE + 9))
TLSIDLE_AUDIT_PORT=$((BASE + 10))
HAPROXY_PLAIN_PORT=$((BASE + 11))
FLOOR_PORT=$((BASE + 12))
FLOOR_TLS_PORT=$((BASE + 13))
PPROF_PORT=$((BASE + 14))
FLOOR_PPROF_PORT=$((BASE + 15))
# shellcheck disable=SC2016 # $1 is expanded by the inner bash
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }
for p in $(seq "$BASE" $((BASE + 15))); do
	if port_open "$p"; then die "port 127.0.0.1:$p is in use; set BENCH_PORT_BASE"; fi
done

BENCH_DIR=${POPGATE_BENCH_DIR:-/tmp/popgate-bench}
mkdir -p "$BENCH_DIR"
RUN=$(mktemp -d "$BENCH_DIR/run-$(date +%Y%m%d-%H%M%S)-XXXX")
mkdir -p "$RUN/bin" "$RUN/spool"
RESULTS=$RUN/results.jsonl
OUTPUT=$RUN/output.txt
AUDIT_FILE=$RUN/audit.jsonl
log "run directory $RUN ($MODE)"

if [ -n "${POPGATE_BENCH_BIN:-}" ]; then
	[ "$MODE" != profile ] || die "POPGATE_BENCH_BIN does not go with profile"
	cp "$POPGATE_BENCH_BIN" "$RUN/bin/popgate" || die "cannot copy $POPGATE_BENCH_BIN"
	log "measuring $POPGATE_BENCH_BIN, not the working tree"
else
	(cd "$REPO" && go build -o "$RUN/bin/popgate" .) || die "building popgate failed"
fi
(cd "$REPO" && go build -o "$RUN/bin/popload" ./integration/popload) || die "building popload failed"
POPLOAD=$RUN/bin/popload
POPGATE_BIN=$RUN/bin/popgate
if [ "$MODE" = profile ]; then
	# The same working tree plus a loopback pprof listener, added to
	# package main by an overlay: no file of the repository changes.
	printf '{"Replace":{"%s":"%s"}}\n' "$REPO/zz_bench_pprof.go" "$HERE/bench/pprof.go.in" >"$RUN/overlay.json"
	(cd "$REPO" && go build -overlay "$RUN/overlay.json" -o "$RUN/bin/popgate-pprof" .) || die "building popgate with pprof failed"
	POPGATE_BIN=$RUN/bin/popgate-pprof
fi

render() { # render TEMPLATE OUT
	local v args=()
	for v in RUN PLAIN_PORT AFTERAUTH_PORT SCAN_PORT TLS_PORT TLSIDLE_PORT HAPROXY_PORT STUNNEL_PORT \
		PLAIN_AUDIT_PORT AFTERAUTH_AUDIT_PORT TLS_AUDIT_PORT TLSIDLE_AUDIT_PORT HAPROXY_PLAIN_PORT \
		POP3_ADDR CLAMD_TCP CERT KEY; do
		args+=(-e "s|@${v}@|${!v}|g")
	done
	sed "${args[@]}" -e "s|@PEM@|$RUN/haproxy.pem|g" "$1" >"$2"
	local left
	left=$(grep -v '^[[:space:]]*[#;]' "$2" | grep -o '@[A-Z_]*@' | head -1 || true)
	[ -z "$left" ] || die "$2: placeholder left: $left"
}
render "$HERE/bench/popgate.hcl.in" "$RUN/popgate.hcl"
render "$HERE/bench/haproxy.cfg.in" "$RUN/haproxy.cfg"
render "$HERE/bench/stunnel.conf.in" "$RUN/stunnel.conf"
(umask 077 && cat "$CERT" "$KEY" >"$RUN/haproxy.pem")
"$RUN/bin/popgate" validate -config "$RUN/popgate.hcl" >/dev/null || die "popgate rejects $RUN/popgate.hcl"
haproxy -c -q -f "$RUN/haproxy.cfg" || die "haproxy rejects $RUN/haproxy.cfg"

# Processes this script started, by PID; only these are ever stopped.
PG_PID='' HA_PID='' ST_PID='' FL_PID=''
stop() { # stop NAME PID: SIGTERM, wait up to 10 s, then SIGKILL
	local name=$1 pid=$2
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 100); do
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
	stop floor-server "$FL_PID"
}
trap cleanup EXIT

wait_port() { # wait_port NAME PORT PID: up to 10 s
	for _ in $(seq 1 100); do
		port_open "$2" && return 0
		kill -0 "$3" 2>/dev/null || die "$1 exited; see $RUN/$1.log"
		sleep 0.1
	done
	die "$1 does not accept connections on 127.0.0.1:$2 after 10 s; see $RUN/$1.log"
}

# start_popgate starts a fresh popgate, so memory readings start clean.
# Extra arguments are environment assignments for it.
start_popgate() {
	stop popgate "$PG_PID"
	(cd "$RUN" && exec env "$@" "$POPGATE_BIN" run -config "$RUN/popgate.hcl" >>"$RUN/popgate.log" 2>&1) &
	PG_PID=$!
	wait_port popgate "$TLSIDLE_AUDIT_PORT" "$PG_PID"
	[ "$(readlink "/proc/$PG_PID/exe")" = "$POPGATE_BIN" ] || die "pid $PG_PID is not popgate"
	wait_port popgate "$SCAN_PORT" "$PG_PID"
}
start_haproxy() {
	[ -z "$HA_PID" ] || return 0
	(cd "$RUN" && exec haproxy -db -f "$RUN/haproxy.cfg" >"$RUN/haproxy.log" 2>&1) &
	HA_PID=$!
	wait_port haproxy "$HAPROXY_PLAIN_PORT" "$HA_PID"
	wait_port haproxy "$HAPROXY_PORT" "$HA_PID"
}
start_stunnel() {
	[ -z "$ST_PID" ] || return 0
	(cd "$RUN" && exec stunnel4 "$RUN/stunnel.conf" >"$RUN/stunnel.out" 2>&1) &
	ST_PID=$!
	wait_port stunnel "$STUNNEL_PORT" "$ST_PID"
}
start_floor() { # start_floor PORT [popload floor-server flags]: a fresh one
	local port=$1
	shift
	stop floor-server "$FL_PID"
	(exec "$POPLOAD" floor-server -listen "127.0.0.1:$port" "$@" >>"$RUN/floor-server.log" 2>&1) &
	FL_PID=$!
	wait_port floor-server "$port" "$FL_PID"
}

FAILED=0
run() { # run ARGS...: one popload scenario; a failure is reported at the end
	local st
	echo "load average before $1: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RUN/machine.txt"
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
	R=10 NOOPS=5000 BATCHES=200 LOGIN_DUR=8s LOGIN_R=5 IDLE=10000 TLSIDLE=10000 ONACCEPT_IDLE=1000
	CONC=1000 CONC_DUR=20s CONC_R=3 TLS_R=10 SCAN_R=5
fi
LOADUSER=(-user load000 -pass load-pw)
{
	echo "# popgate benchmark run ($MODE)"
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	if [ -n "${POPGATE_BENCH_BIN:-}" ]; then
		echo "popgate: the binary $POPGATE_BENCH_BIN (not the working tree); $("$RUN/bin/popgate" version 2>/dev/null | head -1 || true)"
	else
		echo "commit: $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown) (popgate is built from the working tree)"
	fi
	echo "cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	echo "kernel: $(uname -r); $(go version)"
	echo "dovecot $(dovecot --version 2>/dev/null | cut -d' ' -f1); $(haproxy -v | head -1 | cut -d' ' -f1-3); $(stunnel4 -version 2>&1 | grep -m1 '^stunnel' | cut -d' ' -f1-2)"
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$RUN/machine.txt"

# profile_cpu NAME SECONDS POPLOAD-ARGS...: a CPU profile of popgate taken
# for SECONDS while popload runs the scenario again and again.
profile_cpu() {
	local name=$1 secs=$2 curl_pid
	shift 2
	curl -sf -o "$RUN/cpu-$name.pprof" "http://127.0.0.1:$PPROF_PORT/debug/pprof/profile?seconds=$secs" &
	curl_pid=$!
	local cpu0 cpu1
	cpu0=$(cut -d' ' -f14,15 "/proc/$PG_PID/stat")
	while kill -0 "$curl_pid" 2>/dev/null; do
		"$POPLOAD" "$@" -warmup 0 >>"$RUN/profile-load.txt" 2>&1 || {
			log "popload $1 failed while profiling $name; see $RUN/profile-load.txt"
			break
		}
	done
	wait "$curl_pid" || die "fetching the CPU profile for $name failed"
	cpu1=$(cut -d' ' -f14,15 "/proc/$PG_PID/stat")
	{
		echo "## $name (popgate utime stime ticks before: $cpu0, after: $cpu1)"
		echo '```'
		go tool pprof -top -nodecount=30 "$POPGATE_BIN" "$RUN/cpu-$name.pprof" 2>&1
		echo '```'
		echo
		echo "Cumulative:"
		echo '```'
		go tool pprof -top -cum -nodecount=30 "$POPGATE_BIN" "$RUN/cpu-$name.pprof" 2>&1
		echo '```'
	} | tee "$RUN/cpu-$name.top.txt" >>"$RUN/profiles.md"
	log "profile $name: $RUN/cpu-$name.top.txt"
}

if [ "$MODE" = profile ]; then
	: >"$RUN/profiles.md"
	start_popgate "POPGATE_BENCH_PPROF=127.0.0.1:$PPROF_PORT"
	start_haproxy
	start_stunnel
	S=12
	for t in popgate:$PLAIN_PORT popgate-audit:$PLAIN_AUDIT_PORT; do
		n=${t%%:*} p=${t##*:}
		T=(-target "$n=127.0.0.1:$p")
		want noop-pipelined && profile_cpu "noop-pipelined-$n" $S noop-pipelined "${T[@]}" "${LOADUSER[@]}" -rounds 5 -batches 200
		want retr-pipelined && profile_cpu "retr-pipelined-$n" $S retr-pipelined "${T[@]}" -user bob -pass bob-pw-91c2 -rounds 5
		want retr-pipelined-uidl && profile_cpu "retr-pipelined-uidl-$n" $S retr-pipelined "${T[@]}" -uidl -user bob -pass bob-pw-91c2 -rounds 5
		want retr && profile_cpu "retr-$n" $S retr "${T[@]}" -user big -pass big-pw-5d0e -rounds 5
		want noop-rtt && profile_cpu "noop-rtt-$n" $S noop-rtt "${T[@]}" "${LOADUSER[@]}" -rounds 2 -count 5000
		want logins && profile_cpu "logins-$n" $S logins "${T[@]}" -pass load-pw -concurrency 16 -duration 4s -rounds 1
		want concurrent && profile_cpu "concurrent-$n" 20 concurrent "${T[@]}" -pass load-pw -sessions 1000 -duration 15s -rounds 1
	done
	for t in popgate:$TLS_PORT popgate-audit:$TLS_AUDIT_PORT; do
		n=${t%%:*} p=${t##*:}
		want tls-retr && profile_cpu "tls-retr-$n" $S tls-retr -target "$n=127.0.0.1:$p" -ca "$CA" -user big -pass big-pw-5d0e -rounds 5
	done
	if want tls-idle; then
		# Heap profiles, every allocation recorded, while 2,000 TLS sessions
		# idle: in popgate, and in the minimal Go TLS server (the floor).
		for t in popgate:$TLSIDLE_PORT popgate-audit:$TLSIDLE_AUDIT_PORT; do
			n=${t%%:*} p=${t##*:}
			start_popgate "POPGATE_BENCH_PPROF=127.0.0.1:$PPROF_PORT" POPGATE_BENCH_MEMPROFILERATE=1
			run tls-idle -label "tls-idle profile, $n" -target "$n=127.0.0.1:$p" -pid "$n=$PG_PID" -sessions 2000 -ca "$CA" \
				-heap-url "http://127.0.0.1:$PPROF_PORT/debug/pprof/heap?gc=1" -heap-out "$RUN/heap-tls-idle-$n.pprof"
		done
		start_floor "$FLOOR_TLS_PORT" -cert "$CERT" -key "$KEY" -pprof "127.0.0.1:$FLOOR_PPROF_PORT" -memprofilerate 1
		run tls-idle -label "tls-idle profile, floor" -subject none -target "floor=127.0.0.1:$FLOOR_TLS_PORT" -pid "floor=$FL_PID" \
			-sessions 2000 -ca "$CA" -heap-url "http://127.0.0.1:$FLOOR_PPROF_PORT/debug/pprof/heap?gc=1" -heap-out "$RUN/heap-tls-idle-floor.pprof"
		for h in popgate:"$POPGATE_BIN" popgate-audit:"$POPGATE_BIN" floor:"$POPLOAD"; do
			{
				echo "## heap of 2,000 idle TLS sessions: ${h%%:*} (inuse_space)"
				echo '```'
				go tool pprof -sample_index=inuse_space -top -nodecount=30 "${h#*:}" "$RUN/heap-tls-idle-${h%%:*}.pprof" 2>&1
				echo '```'
			} >>"$RUN/profiles.md"
		done
	fi
	cleanup
	PG_PID='' HA_PID='' ST_PID='' FL_PID=''
	echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RUN/machine.txt"
	log "profiles: $RUN/profiles.md"
	exit 0
fi

# Memory first, each with a fresh popgate (or floor server).
if want idle; then
	for t in popgate:$AFTERAUTH_PORT popgate-audit:$AFTERAUTH_AUDIT_PORT; do
		start_popgate
		run idle -label "idle, after-auth (no backend connection), ${t%%:*}" -subject popgate,popgate-audit \
			-target "${t%%:*}=127.0.0.1:${t##*:}" -pid "${t%%:*}=$PG_PID" -sessions $IDLE
	done
fi
if want tls-idle; then
	for t in popgate:$TLSIDLE_PORT popgate-audit:$TLSIDLE_AUDIT_PORT; do
		start_popgate
		run tls-idle -label "tls-idle, after-auth, ${t%%:*}" -subject popgate,popgate-audit \
			-target "${t%%:*}=127.0.0.1:${t##*:}" -pid "${t%%:*}=$PG_PID" -sessions $TLSIDLE -ca "$CA"
	done
fi
if want floor; then
	# The floor: a minimal Go server holding a goroutine, its conn (and its
	# crypto/tls.Conn) and a 64-octet buffer per session.
	start_floor "$FLOOR_PORT"
	run idle -label "idle, minimal Go server (floor)" -subject none -target "floor=127.0.0.1:$FLOOR_PORT" -pid "floor=$FL_PID" -sessions $IDLE
	start_floor "$FLOOR_TLS_PORT" -cert "$CERT" -key "$KEY"
	run tls-idle -label "tls-idle, minimal Go TLS server (floor)" -subject none -target "floor=127.0.0.1:$FLOOR_TLS_PORT" -pid "floor=$FL_PID" \
		-sessions $TLSIDLE -ca "$CA"
	stop floor-server "$FL_PID"
	FL_PID=''
fi
if want idle-on-accept; then
	for t in popgate:$PLAIN_PORT popgate-audit:$PLAIN_AUDIT_PORT; do
		start_popgate
		run idle -label "idle, on-accept (with its Dovecot connection), ${t%%:*}" -subject none \
			-target "${t%%:*}=127.0.0.1:${t##*:}" -pid "${t%%:*}=$PG_PID" -sessions $ONACCEPT_IDLE
	done
fi
start_popgate
start_haproxy
PLAIN=(-target "direct=$POP3_ADDR" -target "popgate=127.0.0.1:$PLAIN_PORT" -target "popgate-audit=127.0.0.1:$PLAIN_AUDIT_PORT"
	-target "haproxy=127.0.0.1:$HAPROXY_PLAIN_PORT" -pid "popgate=$PG_PID" -pid "popgate-audit=$PG_PID" -pid "haproxy=$HA_PID"
	-subject "popgate,popgate-audit" -versus haproxy -audit popgate-audit=popgate)

want retr && run retr "${PLAIN[@]}" -user big -pass big-pw-5d0e -rounds $R
want noop-rtt && run noop-rtt "${PLAIN[@]}" "${LOADUSER[@]}" -rounds $R -count $NOOPS
want noop-pipelined && run noop-pipelined "${PLAIN[@]}" -audit-file "$AUDIT_FILE" "${LOADUSER[@]}" -rounds $R -batches $BATCHES
want retr-pipelined && run retr-pipelined "${PLAIN[@]}" -user bob -pass bob-pw-91c2 -rounds $R
want retr-pipelined-uidl && run retr-pipelined -label "retr-pipelined after UIDL" "${PLAIN[@]}" -uidl -user bob -pass bob-pw-91c2 -rounds $R
want logins && run logins "${PLAIN[@]}" -pass load-pw -concurrency 16 -duration $LOGIN_DUR -rounds $LOGIN_R
want concurrent && run concurrent "${PLAIN[@]}" -pass load-pw -sessions $CONC -duration $CONC_DUR -rounds $CONC_R

if want tls-retr; then
	start_stunnel
	run tls-retr -target "haproxy=127.0.0.1:$HAPROXY_PORT" -target "popgate=127.0.0.1:$TLS_PORT" \
		-target "popgate-audit=127.0.0.1:$TLS_AUDIT_PORT" -target "stunnel=127.0.0.1:$STUNNEL_PORT" \
		-target "dovecot-tls=$POP3S_ADDR" -pid "haproxy=$HA_PID" -pid "popgate=$PG_PID" -pid "popgate-audit=$PG_PID" \
		-pid "stunnel=$ST_PID" -subject popgate,popgate-audit -audit popgate-audit=popgate -ca "$CA" \
		-user big -pass big-pw-5d0e -rounds $TLS_R
	stop stunnel "$ST_PID"
	ST_PID=''
fi
stop haproxy "$HA_PID"
HA_PID=''

if want scan-retr; then
	run scan-retr -plain "127.0.0.1:$PLAIN_PORT" -scan "127.0.0.1:$SCAN_PORT" -clamd "$CLAMD_TCP" -popgate-pid "$PG_PID" \
		-message 10MiB=virus:virus-pw-0c1d:4 -message 50MiB=big:big-pw-5d0e:1 -rounds $SCAN_R
fi
stop popgate "$PG_PID"
PG_PID=''

if [ -s "$AUDIT_FILE" ]; then
	echo "audit trail: $(wc -l <"$AUDIT_FILE") records, $(du -h "$AUDIT_FILE" | cut -f1)" | tee -a "$RUN/machine.txt"
	if "$RUN/bin/popgate" audit verify "$AUDIT_FILE" >"$RUN/audit-verify.txt" 2>&1; then
		echo "audit chain: verified ($(tail -1 "$RUN/audit-verify.txt"))" | tee -a "$RUN/machine.txt"
	else
		echo "audit chain: NOT verified, see $RUN/audit-verify.txt" | tee -a "$RUN/machine.txt"
		FAILED=$((FAILED + 1))
	fi
	[ "${BENCH_KEEP_AUDIT:-}" = 1 ] || rm -f "$AUDIT_FILE"
fi
if [ -s "$RUN/floor-server.log" ]; then
	echo "floor server's Go memory (runtime.MemStats after GC, octets):" >>"$RUN/machine.txt"
	grep 'sessions=' "$RUN/floor-server.log" >>"$RUN/machine.txt" || true
fi

if want fleet; then # two instances behind HAProxy, vs one and direct (bench_fleet.sh)
	bash "$HERE/bench_fleet.sh" "$([ "$MODE" = quick ] && echo quick || echo full)" "$RUN" "$RUN/bin/popgate" "$POPLOAD" | tee -a "$RUN/machine.txt" || FAILED=$((FAILED + 1))
fi
if want auth-http; then # logins through an auth_http service: popgate vs nginx mail (bench_auth_http.sh)
	bash "$HERE/bench_auth_http.sh" "$([ "$MODE" = quick ] && echo quick || echo full)" "$RUN/auth-http" "$RUN/bin/popgate" | tee -a "$RUN/machine.txt" || FAILED=$((FAILED + 1))
fi
if want audit-search; then # `popgate audit search` on a 1 GiB trail (128 MiB quick)
	bash "$HERE/bench_audit_search.sh" "$([ "$MODE" = quick ] && echo quick || echo full)" "$RUN" "$RUN/bin/popgate" | tee -a "$RUN/machine.txt" || FAILED=$((FAILED + 1))
fi
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
