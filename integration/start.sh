#!/usr/bin/env bash
# start.sh - start popgate's integration environment: three Dovecot
# instances, clamd, seeded mailboxes, and (if integration/pebble.sh exists)
# Pebble. Writes $POPGATE_IT_DIR/env (default /tmp/popgate-it/env) for the
# tests. Run integration/setup.sh first on a fresh machine.
#
# Usage: integration/start.sh [--restart]
#
# Idempotent: when everything recorded in the pid files is alive, answers,
# and was started by this same version of the scripts and generator, it
# leaves the running daemons (and the mailboxes) alone, so tests running
# elsewhere are not disturbed. Otherwise, or with --restart, it stops the old
# daemons by their pid files, reseeds every mailbox and starts afresh.
#
# Services (all on loopback):
#   A  127.0.0.1:11110 POP3+STLS, :11995 POP3S, :11112 PROXY-protocol POP3;
#      login_trusted_networks=127.0.0.0/8, so the greeting is "+OK [XCLIENT] ..."
#   B  127.0.0.1:12110 POP3 only, no TLS, no XCLIENT; other users and content
#   C  127.0.0.1:11996 POP3S and :11997 POP3+STLS presenting a certificate for
#      "wrong.example" (same CA); A's users and mailboxes
#   clamd 127.0.0.1:13310 and a unix socket; one signature: the EICAR string
#   pool  127.0.0.1:14110-14112, three interchangeable Dovecots on one mail
#      root (integration/pools.sh)
set -euo pipefail
# shellcheck source=integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RESTART=no
case ${1:-} in
--restart) RESTART=yes ;;
'') ;;
*) it_die "usage: $0 [--restart]" ;;
esac

[ "$(id -u)" = 0 ] || it_die "must run as root (Dovecot and clamd are started with their own configs)"
for bin in dovecot doveconf clamd openssl go flock timeout; do
	command -v "$bin" >/dev/null 2>&1 || it_die "$bin not found: run integration/setup.sh first"
done

# tcp_line PORT: connect to 127.0.0.1:PORT and print the first line sent.
tcp_line() {
	timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && IFS= read -r line <&3 && printf "%s\n" "${line%$'"'"'\r'"'"'}"' _ "$1" 2>/dev/null
}
# tcp_open PORT: something accepts connections on 127.0.0.1:PORT.
tcp_open() { timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }
# clamd_ping: clamd answers PONG on its TCP port.
clamd_ping() {
	timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "zPING\0" >&3 && IFS= read -r -d "" line <&3 && [ "$line" = PONG ]' _ "$CLAMD_PORT" 2>/dev/null
}

# stamp: identifies this version of the scripts and the mail generator.
stamp() {
	cat "$IT_HERE/lib.sh" "$IT_HERE/start.sh" "$IT_HERE"/mkmail/*.go | sha256sum | cut -d' ' -f1
}

# healthy: every daemon recorded in a pid file is alive and answers, the env
# file is complete, and the stamp matches.
healthy() {
	[ "$(cat "$IT_DIR/stamp" 2>/dev/null)" = "$(stamp)" ] || return 1
	[ -n "$(env_get POP3_PORT)" ] || return 1
	local n
	for n in a b c; do
		live_pid "$(dovecot_pidfile "$n")" "$(dovecot_dir "$n")/dovecot.conf" >/dev/null || return 1
	done
	live_pid "$(clamd_pidfile)" "$CLAMD_DIR/clamd.conf" >/dev/null || return 1
	tcp_line "$POP3_PORT" | grep -q '^+OK' || return 1
	tcp_line "$POP3B_PORT" | grep -q '^+OK' || return 1
	tcp_line "$POP3_WRONG_PORT" | grep -q '^+OK' || return 1
	clamd_ping || return 1
}

# ensure_mail_user creates the system user that owns the mailboxes: Dovecot
# refuses to access mail as root.
ensure_mail_user() {
	id -u "$MAIL_USER" >/dev/null 2>&1 && return 0
	it_log "creating system user $MAIL_USER"
	useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin "$MAIL_USER"
}

# make_certs creates a CA, a server certificate for localhost/127.0.0.1/::1
# and one for the wrong name, unless valid ones (for another day) exist.
make_certs() {
	local d=$TLS_DIR f ok=yes
	for f in ca.crt server.crt server.key wrong.crt wrong.key; do [ -s "$d/$f" ] || ok=no; done
	if [ $ok = yes ] &&
		openssl x509 -in "$d/ca.crt" -noout -checkend 86400 >/dev/null 2>&1 &&
		openssl verify -CAfile "$d/ca.crt" "$d/server.crt" "$d/wrong.crt" >/dev/null 2>&1 &&
		openssl x509 -in "$d/server.crt" -noout -checkend 86400 >/dev/null 2>&1 &&
		openssl x509 -in "$d/wrong.crt" -noout -checkend 86400 >/dev/null 2>&1; then
		return 0
	fi
	it_log "generating test CA and certificates in $d"
	mkdir -p "$d"
	local tmp
	tmp=$(mktemp -d "$d/new.XXXXXX")
	(
		set -e
		umask 077
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$tmp/ca.key" -out "$tmp/ca.crt" -days 30 \
			-subj "/CN=popgate integration test CA" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
		leaf() { # leaf NAME CN SAN
			openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
				-keyout "$tmp/$1.key" -out "$tmp/$1.csr" -subj "/CN=$2" 2>/dev/null
			printf '%s\n' "basicConstraints=critical,CA:FALSE" \
				"keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
				"subjectAltName=$3" >"$tmp/$1.ext"
			openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" \
				-CAcreateserial -days 30 -extfile "$tmp/$1.ext" -out "$tmp/$1.crt" 2>/dev/null
		}
		leaf server localhost "DNS:localhost,IP:127.0.0.1,IP:::1"
		leaf wrong wrong.example "DNS:wrong.example"
	) || {
		rm -rf "$tmp"
		it_die "openssl failed to create the test certificates"
	}
	for f in ca.key ca.crt server.key server.crt wrong.key wrong.crt; do mv -f "$tmp/$f" "$d/$f"; done
	chmod 0644 "$d"/*.crt
	rm -rf "$tmp"
}

# dovecot_conf NAME PASSWD MAILROOT GREETING TRUSTED: print the settings all
# instances share. TRUSTED is login_trusted_networks (empty: none).
dovecot_conf() {
	local name=$1 passwd=$2 root=$3 greeting=$4 trusted=$5 dir
	dir=$(dovecot_dir "$name")
	local uid gid
	read -r uid gid < <(mail_ids)
	cat <<EOF
# Generated by integration/start.sh for popgate's integration tests.
instance_name = popgate-it-$name
base_dir = $dir/run
state_dir = $dir/state
protocols = pop3
listen = 127.0.0.1
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
auth_verbose = yes
login_greeting = $greeting
# auth_failure_delay is left at its default (2 secs): failed logins are slow.
disable_plaintext_auth = no
auth_mechanisms = plain login apop cram-md5
login_trusted_networks = $trusted
haproxy_trusted_networks = 127.0.0.0/8
mail_uid = $MAIL_USER
mail_gid = $MAIL_USER
first_valid_uid = $uid
first_valid_gid = $gid
mail_location = maildir:~/Maildir
mail_max_userip_connections = 2000
default_process_limit = 5000
default_client_limit = 5000
pop3_uidl_format = %08Xu%08Xv
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $passwd
}
userdb {
  driver = static
  args = uid=$MAIL_USER gid=$MAIL_USER home=$root/%u
}
service stats {
  unix_listener stats-writer {
    mode = 0666
  }
}
service anvil {
  client_limit = 10100
}
EOF
}

# dovecot_tls CERT KEY: print TLS settings.
dovecot_tls() {
	printf 'ssl = yes\nssl_cert = <%s\nssl_key = <%s\n' "$1" "$2"
	[ -s /usr/share/dovecot/dh.pem ] && printf 'ssl_dh = </usr/share/dovecot/dh.pem\n'
	return 0
}

write_dovecot_confs() {
	local a b c
	a=$(dovecot_dir a) b=$(dovecot_dir b) c=$(dovecot_dir c)
	mkdir -p "$a/state" "$b/state" "$c/state"
	{
		dovecot_conf a "$a/passwd" "$MAIL_ROOT" "popgate-it A ready." 127.0.0.0/8
		dovecot_tls "$TLS_DIR/server.crt" "$TLS_DIR/server.key"
		# A master passdb (checked first): SASL PLAIN with authcid "popgate"
		# and the master password opens the mailbox named by the authzid.
		# pass = yes only checks that mailbox exists, never its password:
		# the proxy must have verified the client before it logs in so.
		cat <<EOF
passdb {
  driver = passwd-file
  master = yes
  pass = yes
  args = scheme=PLAIN $a/master.passwd
}
service pop3-login {
  inet_listener pop3 {
    port = $POP3_PORT
  }
  inet_listener pop3s {
    port = $POP3S_PORT
    ssl = yes
  }
  inet_listener pop3-haproxy {
    port = $POP3_HAPROXY_PORT
    haproxy = yes
  }
}
EOF
	} >"$a/dovecot.conf"
	{
		dovecot_conf b "$b/passwd" "$MAIL_ROOT_B" "popgate-it B ready." ""
		printf 'ssl = no\n'
		cat <<EOF
service pop3-login {
  inet_listener pop3 {
    port = $POP3B_PORT
  }
  inet_listener pop3s {
    port = 0
  }
}
EOF
	} >"$b/dovecot.conf"
	{
		dovecot_conf c "$a/passwd" "$MAIL_ROOT" "popgate-it C (wrong certificate) ready." 127.0.0.0/8
		dovecot_tls "$TLS_DIR/wrong.crt" "$TLS_DIR/wrong.key"
		cat <<EOF
service pop3-login {
  inet_listener pop3 {
    port = $POP3_WRONG_PORT
  }
  inet_listener pop3s {
    port = $POP3S_WRONG_PORT
    ssl = yes
  }
}
EOF
	} >"$c/dovecot.conf"
}

write_clamd_conf() {
	mkdir -p "$CLAMD_DIR/db" "$CLAMD_DIR/tmp"
	rm -f "$CLAMD_DIR"/db/*
	"$MKMAIL" ndb -out "$CLAMD_DIR/db/popgate.ndb"
	cat >"$CLAMD_DIR/clamd.conf" <<EOF
# Generated by integration/start.sh for popgate's integration tests.
Foreground no
PidFile $CLAMD_DIR/clamd.pid
LogFile $CLAMD_DIR/clamd.log
LogFileMaxSize 0
LogTime yes
DatabaseDirectory $CLAMD_DIR/db
TemporaryDirectory $CLAMD_DIR/tmp
LocalSocket $CLAMD_DIR/clamd.sock
LocalSocketMode 666
FixStaleSocket yes
TCPSocket $CLAMD_PORT
TCPAddr 127.0.0.1
StreamMaxLength 60M
MaxFileSize 100M
MaxScanSize 200M
MaxThreads 4
MaxConnectionQueueLength 100
ReadTimeout 30
IdleTimeout 60
SelfCheck 3600
Bytecode no
EOF
}

# wait_until DESCRIPTION COMMAND...: poll COMMAND up to 20 s (200 x 0.1 s).
wait_until() {
	local what=$1 i
	shift
	for i in $(seq 1 200); do
		if "$@"; then return 0; fi
		sleep 0.1
	done
	it_die "$what not ready after 20 s"
}
greets() { tcp_line "$1" | grep -q '^+OK'; }

start_all() {
	local port
	for port in $POP3_PORT $POP3S_PORT $POP3_HAPROXY_PORT $POP3S_WRONG_PORT $POP3_WRONG_PORT $POP3B_PORT $CLAMD_PORT; do
		if tcp_open "$port"; then
			it_die "port 127.0.0.1:$port is in use by a process this environment did not record"
		fi
	done
	ensure_mail_user
	local uid gid
	read -r uid gid < <(mail_ids)
	mkdir -p "$IT_DIR/bin"
	(cd "$IT_REPO" && go build -o "$MKMAIL" ./integration/mkmail) || it_die "building integration/mkmail failed"
	make_certs

	it_log "seeding mailboxes under $IT_DIR"
	local n
	for n in a b; do mkdir -p "$(dovecot_dir "$n")"; done
	"$MKMAIL" passwd -instance a -out "$(dovecot_dir a)/passwd"
	"$MKMAIL" passwd -instance b -out "$(dovecot_dir b)/passwd"
	printf '%s:{PLAIN}%s\n' "$MASTER_USER" "$MASTER_PASSWORD" >"$(dovecot_dir a)/master.passwd"
	chgrp dovecot "$(dovecot_dir a)/master.passwd"
	chmod 0640 "$(dovecot_dir a)/master.passwd"
	rm -rf "$MAIL_ROOT" "$MAIL_ROOT_B"
	"$MKMAIL" templates -instance a -templates "$TEMPLATE_DIR" -uid "$uid" -gid "$gid"
	"$MKMAIL" templates -instance b -templates "$TEMPLATE_DIR" -uid "$uid" -gid "$gid"
	"$MKMAIL" seed -instance a -root "$MAIL_ROOT" -templates "$TEMPLATE_DIR" -uid "$uid" -gid "$gid"
	"$MKMAIL" seed -instance b -root "$MAIL_ROOT_B" -templates "$TEMPLATE_DIR" -uid "$uid" -gid "$gid"

	# Dovecot and clamd get as many descriptors as the hard limit allows.
	ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

	write_clamd_conf
	[ -f "$CLAMD_DIR/clamd.log" ] && mv -f "$CLAMD_DIR/clamd.log" "$CLAMD_DIR/clamd.log.old"
	if ! clamd -c "$CLAMD_DIR/clamd.conf" </dev/null >"$CLAMD_DIR/clamd.out" 2>&1 8>&-; then
		cat "$CLAMD_DIR/clamd.out" >&2
		it_die "clamd failed to start; see $CLAMD_DIR/clamd.log"
	fi

	write_dovecot_confs
	for n in a b c; do
		local dir
		dir=$(dovecot_dir "$n")
		[ -f "$dir/dovecot.log" ] && mv -f "$dir/dovecot.log" "$dir/dovecot.log.old"
		doveconf -c "$dir/dovecot.conf" -n >/dev/null || it_die "dovecot $n: bad config $dir/dovecot.conf"
		# Dovecot keeps the stderr it was started with: never hand it ours.
		if ! dovecot -c "$dir/dovecot.conf" </dev/null >/dev/null 2>"$dir/dovecot.err" 8>&-; then
			cat "$dir/dovecot.err" >&2
			it_die "dovecot $n failed to start; see $dir/dovecot.log"
		fi
	done

	wait_until "clamd" clamd_ping
	wait_until "dovecot A on $POP3_PORT" greets "$POP3_PORT"
	wait_until "dovecot A on $POP3S_PORT" tcp_open "$POP3S_PORT"
	wait_until "dovecot A on $POP3_HAPROXY_PORT" tcp_open "$POP3_HAPROXY_PORT"
	wait_until "dovecot B on $POP3B_PORT" greets "$POP3B_PORT"
	wait_until "dovecot C on $POP3_WRONG_PORT" greets "$POP3_WRONG_PORT"
	wait_until "dovecot C on $POP3S_WRONG_PORT" tcp_open "$POP3S_WRONG_PORT"
	wait_until "clamd unix socket" test -S "$CLAMD_DIR/clamd.sock"
	stamp >"$IT_DIR/stamp"
}

write_env() {
	local uid gid
	read -r uid gid < <(mail_ids)
	local a b c
	a=$(dovecot_dir a) b=$(dovecot_dir b) c=$(dovecot_dir c)
	set_env_lines \
		"# start.sh: popgate integration environment; tests assemble the EICAR string from two halves themselves" \
		"POPGATE_IT_DIR=$IT_DIR" \
		"POP3_PORT=$POP3_PORT" "POP3_ADDR=127.0.0.1:$POP3_PORT" \
		"POP3S_PORT=$POP3S_PORT" "POP3S_ADDR=127.0.0.1:$POP3S_PORT" \
		"POP3_HAPROXY_PORT=$POP3_HAPROXY_PORT" "POP3_HAPROXY_ADDR=127.0.0.1:$POP3_HAPROXY_PORT" \
		"POP3S_WRONG_PORT=$POP3S_WRONG_PORT" "POP3S_WRONG_ADDR=127.0.0.1:$POP3S_WRONG_PORT" \
		"POP3_WRONG_PORT=$POP3_WRONG_PORT" "POP3_WRONG_ADDR=127.0.0.1:$POP3_WRONG_PORT" \
		"POP3B_PORT=$POP3B_PORT" "POP3B_ADDR=127.0.0.1:$POP3B_PORT" \
		"CLAMD_TCP=127.0.0.1:$CLAMD_PORT" "CLAMD_UNIX=$CLAMD_DIR/clamd.sock" \
		"CLAMD_PID=$(live_pid "$(clamd_pidfile)" "$CLAMD_DIR/clamd.conf")" \
		"CLAMD_LOG=$CLAMD_DIR/clamd.log" "CLAMD_CONF=$CLAMD_DIR/clamd.conf" \
		"DOVECOT_CA=$TLS_DIR/ca.crt" "DOVECOT_CERT=$TLS_DIR/server.crt" "DOVECOT_KEY=$TLS_DIR/server.key" \
		"WRONG_CERT=$TLS_DIR/wrong.crt" "WRONG_KEY=$TLS_DIR/wrong.key" "WRONG_NAME=wrong.example" \
		"TLS_DIR=$TLS_DIR" \
		"DOVECOT_LOG=$a/dovecot.log" "DOVECOTB_LOG=$b/dovecot.log" "DOVECOTC_LOG=$c/dovecot.log" \
		"DOVECOT_PID=$(live_pid "$(dovecot_pidfile a)" "$a/dovecot.conf")" \
		"DOVECOTB_PID=$(live_pid "$(dovecot_pidfile b)" "$b/dovecot.conf")" \
		"DOVECOTC_PID=$(live_pid "$(dovecot_pidfile c)" "$c/dovecot.conf")" \
		"DOVECOT_CONF=$a/dovecot.conf" "DOVECOTB_CONF=$b/dovecot.conf" "DOVECOTC_CONF=$c/dovecot.conf" \
		"DOVECOT_PASSWD=$a/passwd" "DOVECOTB_PASSWD=$b/passwd" \
		"MASTER_USER=$MASTER_USER" "MASTER_PASSWORD=$MASTER_PASSWORD" \
		"DOVECOT_AUTH_FAILURE_DELAY=2s" \
		"MAIL_ROOT=$MAIL_ROOT" "MAIL_ROOT_B=$MAIL_ROOT_B" "TEMPLATE_DIR=$TEMPLATE_DIR" \
		"MKMAIL=$MKMAIL" "MAIL_UID=$uid" "MAIL_GID=$gid"
}

mkdir -p "$IT_DIR"
exec 8>"$IT_DIR/.start.lock"
flock 8
if [ $RESTART = no ] && healthy; then
	write_env
	it_log "already running; env in $ENV_FILE (use --restart to restart and reseed)"
else
	stop_all
	start_all
	write_env
	it_log "ready; env in $ENV_FILE"
fi
# Daemons were started without fd 8, so releasing it releases the lock.
exec 8>&-
# The backend pool's Dovecot instances (ports 14110-14113), with a state
# and env lines of their own.
bash "$IT_HERE/pools.sh" start
if [ -f "$IT_HERE/pebble.sh" ]; then
	bash "$IT_HERE/pebble.sh" start
fi
