# lib.sh - shared definitions of popgate's integration environment.
# Sourced by start.sh, stop.sh and seed.sh; not meant to be run.
#
# Layout under $POPGATE_IT_DIR (default /tmp/popgate-it):
#   env              KEY=VALUE lines for the tests (start.sh owns the keys in
#                    its own list; other scripts, e.g. pebble.sh, own theirs)
#   bin/mkmail       the mailbox generator (integration/mkmail)
#   tls/             CA, server certificate (localhost, 127.0.0.1, ::1) and a
#                    certificate for the wrong name "wrong.example"
#   dovecot-a/       instance A: dovecot.conf, passwd, dovecot.log, run/ (base_dir)
#   dovecot-b/       instance B (routing tests)
#   dovecot-c/       instance C: A's users and mail, served with the wrong-name cert
#   clamd/           clamd.conf, db/popgate.ndb, clamd.sock, clamd.pid, clamd.log
#   mail-a/, mail-b/ one home per user: USER/Maildir/{cur,new,tmp}
#   templates/       message templates the mailboxes are hard-linked from

IT_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IT_REPO=$(cd "$IT_HERE/.." && pwd)
IT_DIR=${POPGATE_IT_DIR:-/tmp/popgate-it}
ENV_FILE=$IT_DIR/env

# Fixed loopback ports; tests read them from the env file, never from here.
POP3_PORT=11110          # instance A, plain POP3 with STLS
POP3S_PORT=11995         # instance A, implicit TLS
POP3_HAPROXY_PORT=11112  # instance A, PROXY protocol v1/v2 required
POP3S_WRONG_PORT=11996   # instance C, implicit TLS, certificate for wrong.example
POP3_WRONG_PORT=11997    # instance C, plain POP3 whose STLS presents wrong.example
POP3B_PORT=12110         # instance B, plain POP3
CLAMD_PORT=13310         # clamd TCP
# 14140-14149: the fleet tests (integration/harness_fleet_test.go): HAProxy's
# POP3, POP3S and stats frontends, then two popgate instances' POP3, POP3S
# and metrics ports. Started and stopped by the tests themselves.

MAIL_USER=popgatemail
TLS_DIR=$IT_DIR/tls
MAIL_ROOT=$IT_DIR/mail-a
MAIL_ROOT_B=$IT_DIR/mail-b
TEMPLATE_DIR=$IT_DIR/templates
# The master login of Dovecot A (its master passdb): a test secret.
MASTER_USER=popgate-master
MASTER_PASSWORD=master-secret-9f2c
MKMAIL=$IT_DIR/bin/mkmail
CLAMD_DIR=$IT_DIR/clamd

it_log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
it_die() {
	it_log "$*"
	exit 1
}

# dovecot_dir NAME: directory of Dovecot instance NAME (a, b or c).
dovecot_dir() { printf '%s/dovecot-%s\n' "$IT_DIR" "$1"; }

# live_pid PIDFILE PATTERN: print the pid in PIDFILE if that process is alive
# and its command line contains PATTERN (our own config path), so a stale
# file whose pid was reused by another process is never acted on.
live_pid() {
	local file=$1 pattern=$2 pid
	[ -s "$file" ] || return 1
	pid=$(tr -dc '0-9' <"$file")
	[ -n "$pid" ] || return 1
	[ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern" || return 1
	printf '%s\n' "$pid"
}

# stop_pids NAME:PID...: SIGTERM to all at once (Dovecot and clamd each take
# 2-3 s to exit), wait up to 10 s for all, then SIGKILL the rest.
stop_pids() {
	local entry i alive
	[ $# -gt 0 ] || return 0
	for entry in "$@"; do kill -TERM "${entry#*:}" 2>/dev/null || true; done
	for i in $(seq 1 100); do
		alive=no
		for entry in "$@"; do
			if kill -0 "${entry#*:}" 2>/dev/null; then alive=yes; fi
		done
		[ $alive = yes ] || return 0
		sleep 0.1
	done
	for entry in "$@"; do
		if kill -0 "${entry#*:}" 2>/dev/null; then
			it_log "${entry%%:*} (pid ${entry#*:}) ignored SIGTERM for 10 s; sending SIGKILL"
			kill -KILL "${entry#*:}" 2>/dev/null || true
		fi
	done
}

# dovecot_pidfile NAME / clamd_pidfile: where each daemon records its pid.
dovecot_pidfile() { printf '%s/run/master.pid\n' "$(dovecot_dir "$1")"; }
clamd_pidfile() { printf '%s/clamd.pid\n' "$CLAMD_DIR"; }

# stop_all stops every daemon this environment started, by the pids in their
# pid files. It never touches system instances of the same programs.
stop_all() {
	local n pid pids=()
	for n in a b c; do
		if pid=$(live_pid "$(dovecot_pidfile "$n")" "$(dovecot_dir "$n")/dovecot.conf"); then
			pids+=("dovecot-$n:$pid")
		fi
	done
	if pid=$(live_pid "$(clamd_pidfile)" "$CLAMD_DIR/clamd.conf"); then
		pids+=("clamd:$pid")
	fi
	stop_pids "${pids[@]}"
	rm -f "$(clamd_pidfile)"
}

# env_keys: the env file keys start.sh owns (stop.sh removes them).
env_keys() {
	printf '%s\n' POPGATE_IT_DIR \
		POP3_PORT POP3_ADDR POP3S_PORT POP3S_ADDR POP3_HAPROXY_PORT POP3_HAPROXY_ADDR \
		POP3S_WRONG_PORT POP3S_WRONG_ADDR POP3_WRONG_PORT POP3_WRONG_ADDR \
		POP3B_PORT POP3B_ADDR \
		CLAMD_TCP CLAMD_UNIX CLAMD_PID CLAMD_LOG CLAMD_CONF \
		DOVECOT_CA DOVECOT_CERT DOVECOT_KEY WRONG_CERT WRONG_KEY WRONG_NAME TLS_DIR \
		DOVECOT_LOG DOVECOTB_LOG DOVECOTC_LOG DOVECOT_PID DOVECOTB_PID DOVECOTC_PID \
		DOVECOT_CONF DOVECOTB_CONF DOVECOTC_CONF DOVECOT_PASSWD DOVECOTB_PASSWD \
		DOVECOT_AUTH_FAILURE_DELAY \
		MAIL_ROOT MAIL_ROOT_B TEMPLATE_DIR MKMAIL MAIL_UID MAIL_GID
}

# set_env_lines [LINE...]: replace the lines of the env file whose keys
# start.sh owns with LINEs, keeping every other line (e.g. pebble.sh's
# PEBBLE_* lines). Uses the same lock file as pebble.sh.
set_env_lines() {
	mkdir -p "$IT_DIR"
	touch "$ENV_FILE"
	(
		flock 9
		local tmp keys
		tmp=$(mktemp "$ENV_FILE.XXXXXX")
		keys=$(env_keys | paste -sd'|')
		grep -Ev "^(${keys})=|^# start\.sh" "$ENV_FILE" >"$tmp" || true
		for line in "$@"; do printf '%s\n' "$line" >>"$tmp"; done
		chmod 0644 "$tmp"
		mv -f "$tmp" "$ENV_FILE"
	) 9>"$ENV_FILE.lock"
}

# env_get KEY: print the value of KEY from the env file.
env_get() {
	[ -f "$ENV_FILE" ] || return 1
	grep -m1 "^$1=" "$ENV_FILE" | cut -d= -f2-
}

# mail_ids: print "uid gid" of the mail user.
mail_ids() { printf '%s %s\n' "$(id -u "$MAIL_USER")" "$(id -g "$MAIL_USER")"; }
