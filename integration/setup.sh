#!/usr/bin/env bash
# setup.sh - install what popgate's integration tests need on Debian
# bookworm: Dovecot (POP3), clamd, client programs used for comparisons,
# make, nftables (the interception tests' namespaces, integration/netns),
# rsyslog (the fleet tests ship audit trails with it, contrib/rsyslog-*),
# headless Chromium, and staticcheck. Idempotent: apt-get runs only
# when a program is missing.
# Must run as root. Daemons Debian's scripts may start are never used: the
# tests run their own instances (integration/start.sh) on other ports.
#
# Usage: integration/setup.sh
#   POPGATE_SETUP_FORCE=1 runs apt-get even when everything is present.
set -euo pipefail

log() { printf 'setup.sh: %s\n' "$*" >&2; }

PACKAGES="dovecot-core dovecot-pop3d clamav-daemon clamav fetchmail curl python3 haproxy stunnel4 openssl procps make nftables iproute2 redis-server rsyslog"
# Programs (and files) that prove the packages above are installed.
NEEDED="/usr/sbin/dovecot /usr/bin/doveconf /usr/lib/dovecot/pop3 /usr/lib/dovecot/pop3-login
/usr/sbin/clamd /usr/bin/clamscan /usr/bin/fetchmail /usr/bin/curl /usr/bin/python3
/usr/sbin/haproxy /usr/bin/stunnel4 /usr/bin/openssl /usr/bin/pgrep /usr/bin/make
/usr/sbin/nft /usr/sbin/ip /usr/bin/redis-server /usr/bin/redis-cli /usr/sbin/rsyslogd"

missing=""
for f in $NEEDED; do
	[ -x "$f" ] || missing="$missing $f"
done
if [ -n "$missing" ] || [ "${POPGATE_SETUP_FORCE:-}" = 1 ]; then
	[ "$(id -u)" = 0 ] || { log "missing:$missing; run as root to install"; exit 1; }
	log "installing packages (missing:$missing)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y $PACKAGES
	for f in $NEEDED; do
		[ -x "$f" ] || { log "still missing after apt-get: $f"; exit 1; }
	done
fi

# Headless Chromium renders the status page in TestOpsStatusPage. Its own
# apt-get run, without recommends (about 20 s), only when it is missing.
if ! command -v chromium >/dev/null 2>&1 || [ "${POPGATE_SETUP_FORCE:-}" = 1 ]; then
	[ "$(id -u)" = 0 ] || { log "chromium is missing; run as root to install"; exit 1; }
	log "installing chromium"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends chromium fonts-dejavu-core
	command -v chromium >/dev/null 2>&1 || { log "still missing after apt-get: chromium"; exit 1; }
fi

command -v go >/dev/null 2>&1 || { log "go is not installed"; exit 1; }
gobin=$(go env GOBIN)
[ -n "$gobin" ] || gobin="$(go env GOPATH | cut -d: -f1)/bin"
if [ ! -x "$gobin/staticcheck" ] && ! command -v staticcheck >/dev/null 2>&1; then
	log "installing staticcheck into $gobin"
	# Outside the module so the project's go.mod plays no part.
	(cd / && GOFLAGS=-mod=mod go install honnef.co/go/tools/cmd/staticcheck@latest)
fi
