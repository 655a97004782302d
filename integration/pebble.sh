#!/usr/bin/env bash
# pebble.sh - run Pebble, Let's Encrypt's ACME test CA (RFC 8555), for popgate's
# integration tests.
#
# Usage:
#   integration/pebble.sh [start]   install if needed, start, wait until ready, write env
#   integration/pebble.sh stop      stop the Pebble this script started, drop its env lines
#   integration/pebble.sh status    exit 0 if the recorded Pebble answers, 1 otherwise
#
# Everything lives under $POPGATE_IT_DIR (default /tmp/popgate-it):
#   bin/pebble               the binary (go install ...pebble@v2.10.1), unless one is found
#   pebble/                  config, Pebble's own HTTPS CA and certificate, log, pid file
#   env                      KEY=VALUE lines; this script owns the PEBBLE_* lines:
#     PEBBLE_DIR   ACME directory URL
#     PEBBLE_CA    PEM file of the CA that signed Pebble's HTTPS API certificate
#     PEBBLE_MGMT  management API base URL (issuing root at $PEBBLE_MGMT/roots/0)
#     PEBBLE_PID   process id of the running Pebble
#     PEBBLE_BIN   path of the Pebble binary used
#     PEBBLE_CHALLTESTSRV_BIN  path of pebble-challtestsrv (same version), the
#                  DNS server of tests that run a Pebble that really validates
#
# Pebble runs with PEBBLE_VA_ALWAYS_VALID=1 (no challenge is really checked),
# PEBBLE_VA_NOSLEEP=1 and PEBBLE_WFE_NONCEREJECT=0 (no random bad nonces).
# The issuing root is regenerated at every start: fetch it from the management API.
set -euo pipefail

PEBBLE_VERSION=v2.10.1
PEBBLE_MODULE=github.com/letsencrypt/pebble/v2/cmd/pebble
CHALLTESTSRV_MODULE=github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv
HOST=127.0.0.1
ACME_PORT=14000
MGMT_PORT=15000

IT_DIR=${POPGATE_IT_DIR:-/tmp/popgate-it}
PB_DIR=$IT_DIR/pebble
ENV_FILE=$IT_DIR/env
PID_FILE=$PB_DIR/pebble.pid
LOG_FILE=$PB_DIR/pebble.log

log() { printf 'pebble.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# binary_ok PATH: PATH is an executable built from Pebble $PEBBLE_VERSION.
binary_ok() {
	[ -x "$1" ] || return 1
	go version -m "$1" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/letsencrypt/pebble/v2[[:space:]]+$PEBBLE_VERSION([[:space:]]|$)"
}

# find_or_install prints the path of a suitable Pebble binary, installing one if needed.
find_or_install() {
	local gobin_default
	gobin_default="$(go env GOPATH 2>/dev/null | cut -d: -f1)/bin/pebble"
	for candidate in "$IT_DIR/bin/pebble" "$gobin_default"; do
		if binary_ok "$candidate"; then
			printf '%s\n' "$candidate"
			return 0
		fi
	done
	log "installing $PEBBLE_MODULE@$PEBBLE_VERSION into $IT_DIR/bin"
	mkdir -p "$IT_DIR/bin"
	# Run outside any module so the project's go.mod plays no part.
	(cd "$IT_DIR" && GOBIN="$IT_DIR/bin" GOFLAGS=-mod=mod go install "$PEBBLE_MODULE@$PEBBLE_VERSION") >&2 ||
		die "go install $PEBBLE_MODULE@$PEBBLE_VERSION failed"
	binary_ok "$IT_DIR/bin/pebble" || die "installed $IT_DIR/bin/pebble is not Pebble $PEBBLE_VERSION"
	printf '%s\n' "$IT_DIR/bin/pebble"
}

# find_or_install_challtestsrv prints the path of pebble-challtestsrv
# $PEBBLE_VERSION, installing it if needed.
find_or_install_challtestsrv() {
	local bin=$IT_DIR/bin/pebble-challtestsrv
	if binary_ok "$bin"; then
		printf '%s\n' "$bin"
		return 0
	fi
	log "installing $CHALLTESTSRV_MODULE@$PEBBLE_VERSION into $IT_DIR/bin"
	mkdir -p "$IT_DIR/bin"
	(cd "$IT_DIR" && GOBIN="$IT_DIR/bin" GOFLAGS=-mod=mod go install "$CHALLTESTSRV_MODULE@$PEBBLE_VERSION") >&2 ||
		die "go install $CHALLTESTSRV_MODULE@$PEBBLE_VERSION failed"
	binary_ok "$bin" || die "installed $bin is not pebble-challtestsrv $PEBBLE_VERSION"
	printf '%s\n' "$bin"
}

# make_certs creates the CA and the certificate Pebble serves its HTTPS API
# with, unless usable ones (valid for at least another day) already exist.
make_certs() {
	local ca=$PB_DIR/api-ca.pem cakey=$PB_DIR/api-ca.key
	local cert=$PB_DIR/api-cert.pem key=$PB_DIR/api-key.pem
	if [ -s "$ca" ] && [ -s "$cert" ] && [ -s "$key" ] &&
		openssl x509 -in "$ca" -noout -checkend 86400 >/dev/null 2>&1 &&
		openssl x509 -in "$cert" -noout -checkend 86400 >/dev/null 2>&1 &&
		openssl verify -CAfile "$ca" "$cert" >/dev/null 2>&1; then
		return 0
	fi
	log "generating the CA and certificate for Pebble's HTTPS API"
	local tmp
	tmp=$(mktemp -d "$PB_DIR/certs.XXXXXX")
	(
		umask 077
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$tmp/ca.key" -out "$tmp/ca.pem" -days 30 \
			-subj "/CN=popgate integration Pebble API CA" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$tmp/key.pem" -out "$tmp/req.csr" -subj "/CN=localhost" 2>/dev/null
		printf '%s\n' \
			"basicConstraints=critical,CA:FALSE" \
			"keyUsage=critical,digitalSignature" \
			"extendedKeyUsage=serverAuth" \
			"subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" >"$tmp/ext.cnf"
		openssl x509 -req -in "$tmp/req.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
			-CAcreateserial -days 30 -extfile "$tmp/ext.cnf" -out "$tmp/cert.pem" 2>/dev/null
	) || { rm -rf "$tmp"; die "openssl failed to create Pebble's API certificate"; }
	mv -f "$tmp/ca.key" "$cakey"
	mv -f "$tmp/key.pem" "$key"
	mv -f "$tmp/cert.pem" "$cert"
	mv -f "$tmp/ca.pem" "$ca"
	chmod 0644 "$ca" "$cert"
	rm -rf "$tmp"
}

write_config() {
	cat >"$PB_DIR/pebble-config.json" <<EOF
{
  "pebble": {
    "listenAddress": "$HOST:$ACME_PORT",
    "managementListenAddress": "$HOST:$MGMT_PORT",
    "certificate": "$PB_DIR/api-cert.pem",
    "privateKey": "$PB_DIR/api-key.pem",
    "httpPort": 5002,
    "tlsPort": 5001,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false,
    "domainBlocklist": ["blocked-domain.example"],
    "retryAfter": { "authz": 1, "order": 1 },
    "keyAlgorithm": "ecdsa",
    "profiles": {
      "default": { "description": "90-day certificates", "validityPeriod": 7776000 },
      "shortlived": { "description": "6-day certificates", "validityPeriod": 518400 }
    }
  }
}
EOF
}

# probe URL: the URL answers 200 over HTTPS verified with Pebble's API CA.
probe() {
	if command -v curl >/dev/null 2>&1; then
		curl -fsS --max-time 2 --cacert "$PB_DIR/api-ca.pem" -o /dev/null "$1" 2>/dev/null
	else
		local rest=${1#https://} hostport path
		hostport=${rest%%/*}
		path=/${rest#*/}
		printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hostport" |
			timeout 3 openssl s_client -quiet -connect "$hostport" \
				-CAfile "$PB_DIR/api-ca.pem" -verify_return_error 2>/dev/null |
			head -n 1 | grep -q ' 200 '
	fi
}

# recorded_pid prints the pid from the pid file if that process is a live Pebble.
recorded_pid() {
	[ -s "$PID_FILE" ] || return 1
	local pid
	pid=$(cat "$PID_FILE")
	case $pid in '' | *[!0-9]*) return 1 ;; esac
	[ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "-config $PB_DIR/pebble-config.json" || return 1
	printf '%s\n' "$pid"
}

# set_env_lines [LINE...]: replace every PEBBLE_* line of the env file with LINEs.
set_env_lines() {
	mkdir -p "$IT_DIR"
	touch "$ENV_FILE"
	(
		flock 9
		local tmp
		tmp=$(mktemp "$ENV_FILE.XXXXXX")
		grep -v '^PEBBLE_' "$ENV_FILE" >"$tmp" || true
		for line in "$@"; do printf '%s\n' "$line" >>"$tmp"; done
		chmod 0644 "$tmp"
		mv -f "$tmp" "$ENV_FILE"
	) 9>"$ENV_FILE.lock"
}

write_env() {
	set_env_lines \
		"PEBBLE_DIR=https://$HOST:$ACME_PORT/dir" \
		"PEBBLE_CA=$PB_DIR/api-ca.pem" \
		"PEBBLE_MGMT=https://$HOST:$MGMT_PORT" \
		"PEBBLE_PID=$1" \
		"PEBBLE_BIN=$2" \
		"PEBBLE_CHALLTESTSRV_BIN=$3"
}

start() {
	command -v go >/dev/null 2>&1 || die "go is required to install Pebble"
	command -v openssl >/dev/null 2>&1 || die "openssl is required"
	mkdir -p "$PB_DIR"
	local bin cts pid
	bin=$(find_or_install)
	cts=$(find_or_install_challtestsrv)
	if pid=$(recorded_pid) && probe "https://$HOST:$ACME_PORT/dir"; then
		log "already running (pid $pid)"
		write_env "$pid" "$bin" "$cts"
		return 0
	fi
	if pid=$(recorded_pid); then
		log "recorded Pebble (pid $pid) does not answer; restarting it"
		stop_pid "$pid"
	fi
	make_certs
	write_config
	: >"$LOG_FILE"
	PEBBLE_VA_ALWAYS_VALID=1 PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 \
		setsid "$bin" -config "$PB_DIR/pebble-config.json" >>"$LOG_FILE" 2>&1 </dev/null &
	pid=$!
	printf '%s\n' "$pid" >"$PID_FILE"
	# Bounded readiness poll: 150 tries, 0.1 s apart.
	local i
	for i in $(seq 1 150); do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$PID_FILE"
			tail -n 20 "$LOG_FILE" >&2 || true
			die "Pebble exited during start-up (log: $LOG_FILE)"
		fi
		if probe "https://$HOST:$ACME_PORT/dir" && probe "https://$HOST:$MGMT_PORT/roots/0"; then
			write_env "$pid" "$bin" "$cts"
			log "ready after ${i} polls: pid $pid, directory https://$HOST:$ACME_PORT/dir, env $ENV_FILE"
			return 0
		fi
		sleep 0.1
	done
	stop_pid "$pid"
	rm -f "$PID_FILE"
	tail -n 20 "$LOG_FILE" >&2 || true
	die "Pebble did not become ready within 15 s (log: $LOG_FILE)"
}

# stop_pid PID: TERM, wait up to 5 s, then KILL.
stop_pid() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	log "pid $pid ignored SIGTERM; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
}

stop() {
	local pid
	if pid=$(recorded_pid); then
		stop_pid "$pid"
		log "stopped pid $pid"
	else
		log "no running Pebble recorded in $PID_FILE"
	fi
	rm -f "$PID_FILE"
	if [ -f "$ENV_FILE" ]; then
		set_env_lines
	fi
}

status() {
	local pid
	if pid=$(recorded_pid) && probe "https://$HOST:$ACME_PORT/dir"; then
		log "running (pid $pid)"
		return 0
	fi
	log "not running"
	return 1
}

case ${1:-start} in
start) start ;;
stop) stop ;;
status) status ;;
*) die "usage: $0 [start|stop|status]" ;;
esac
