#!/usr/bin/env bash
# netns.sh - the network namespaces of popgate's interception tests
# (integration/intercept_test.go, issue 13): a client, a router that runs
# popgate behind nftables interception rules, and a server running its own
# Dovecot. Nothing is added to the host's network namespace: every veth,
# address, route, sysctl and nftables rule lives inside the three namespaces
# and goes away with them.
#
# Usage: integration/netns/netns.sh up|down|status
#   up      create everything (idempotent: a healthy environment made by this
#           version of the script is left alone; anything else is torn down
#           and made afresh). A failure half-way tears down what was made.
#           Writes $POPGATE_IT_DIR/netns/env for the tests.
#   down    stop the server's Dovecot and every process still inside the
#           three namespaces (by the pids `ip netns pids` reports), delete
#           the namespaces (with their veths, rules and routes) and the env
#           file. Keeps dovecot.log and the mailboxes for inspection.
#   status  exit 0 when the environment is up and Dovecot answers.
#
# Needs root, iproute2, nftables, Dovecot, and integration/start.sh having
# run (for the mkmail tool and the message templates). Every loop is bounded.
#
#   pgit-cli (client)          pgit-rtr (router, runs popgate)        pgit-srv (server)
#   10.231.1.2 redirect   pgc0 ---- pgc1 10.231.1.1                    10.231.2.2 Dovecot :110
#   10.231.1.3 tproxy               pgs1 10.231.2.1 ---- pgs0          10.231.3.2 Dovecot :110
#                                                                      (outside the allow-list)
# Router rules (nftables, table ip popgate_it):
#   nat prerouting:    ip saddr 10.231.1.2 tcp dport 110 redirect to :1110
#   mangle prerouting: socket transparent 1 -> mark 1 (replies to spoofed sockets)
#                      ip saddr 10.231.1.3 tcp dport 110 tproxy to :1111, mark 1
#   ip rule fwmark 1 lookup 231; table 231: local 0.0.0.0/0 dev lo
# Counters (nft list counter ip popgate_it NAME): router redirect_in (new
# connections to :1110, redirected or direct), tproxy_in (new connections
# diverted to :1111); server pop3_allowed (new connections to 10.231.2.2:110)
# and pop3_denied (to 10.231.3.2:110).
set -euo pipefail
# shellcheck source=integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

NS_CLI=pgit-cli
NS_RTR=pgit-rtr
NS_SRV=pgit-srv
CLI_ADDR=10.231.1.2        # client source address the redirect rule matches
CLI_TPROXY_ADDR=10.231.1.3 # client source address the TPROXY rule matches
RTR_CLI_ADDR=10.231.1.1    # router, client side
RTR_SRV_ADDR=10.231.2.1    # router, server side
SRV_ADDR=10.231.2.2        # the server the client means to reach
SRV_DENIED_ADDR=10.231.3.2 # the same server under an address outside the allow-list
REDIRECT_PORT=1110
TPROXY_PORT=1111
TPROXY_MARK=0x1
TPROXY_TABLE=231
GREETING="popgate-it netns server ready."

NETNS_DIR=$IT_DIR/netns
NETNS_ENV=$NETNS_DIR/env
DC_DIR=$NETNS_DIR/dovecot
DC_CONF=$DC_DIR/dovecot.conf
DC_PIDFILE=$DC_DIR/run/master.pid
NETNS_MAIL=$NETNS_DIR/mail

# The Dovecot config generator is start.sh's dovecot_conf; start.sh runs its
# main program when sourced, so only that function's text is taken from it
# (up to its closing brace outside here-documents).
eval "$(awk '
	/^dovecot_conf\(\) \{$/ { on = 1 }
	!on { next }
	{ print }
	doc != "" && $0 == doc { doc = ""; next }
	doc == "" && match($0, /<<-?[A-Z_]+$/) { doc = substr($0, RSTART + 2); sub(/^-/, "", doc); next }
	doc == "" && /^}$/ { exit }
' "$IT_HERE/start.sh")"
declare -F dovecot_conf >/dev/null || it_die "no dovecot_conf() in $IT_HERE/start.sh"
# dovecot_conf names its directories through dovecot_dir: the instance
# "netns" lives under $POPGATE_IT_DIR/netns/dovecot.
eval "orig_$(declare -f dovecot_dir)"
dovecot_dir() {
	if [ "$1" = netns ]; then printf '%s\n' "$DC_DIR"; else orig_dovecot_dir "$1"; fi
}

# in_ns NS CMD...: run CMD in namespace NS.
in_ns() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

ns_exists() { [ -e "/run/netns/$1" ]; }

# ns_greets: Dovecot answers +OK on SRV_ADDR:110, asked from the server namespace.
ns_greets() {
	in_ns "$NS_SRV" timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/110" && IFS= read -r line <&3 && [ "${line#+OK}" != "$line" ]' _ "$SRV_ADDR" 2>/dev/null
}

stamp() {
	cat "$IT_HERE/lib.sh" "$IT_HERE/start.sh" "$IT_HERE/netns/netns.sh" | sha256sum | cut -d' ' -f1
}

healthy() {
	[ "$(cat "$NETNS_DIR/stamp" 2>/dev/null)" = "$(stamp)" ] || return 1
	[ -s "$NETNS_ENV" ] || return 1
	local ns
	for ns in "$NS_CLI" "$NS_RTR" "$NS_SRV"; do ns_exists "$ns" || return 1; done
	live_pid "$DC_PIDFILE" "$DC_CONF" >/dev/null || return 1
	ns_greets
}

# ancestors: this script's pid and those of its ancestors (the test binary
# that runs it), which are never killed.
ancestors() {
	local pid=$$
	while [ -n "$pid" ] && [ "$pid" -gt 1 ]; do
		printf '%s\n' "$pid"
		pid=$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
	done
}

# ns_pids NS: the processes in namespace NS, ancestors excluded.
ns_pids() {
	ip netns pids "$1" 2>/dev/null | grep -vxF -f <(ancestors) | tr '\n' ' ' || true
}

# kill_ns_pids NS: SIGTERM, then after up to 5 s SIGKILL, every process in
# namespace NS (processes only the tests started there).
kill_ns_pids() {
	local ns=$1 pids i
	ns_exists "$ns" || return 0
	pids=$(ns_pids "$ns")
	[ -n "${pids// /}" ] || return 0
	it_log "stopping processes left in $ns: $pids"
	# shellcheck disable=SC2086
	kill -TERM $pids 2>/dev/null || true
	for i in $(seq 1 50); do
		pids=$(ns_pids "$ns")
		[ -n "${pids// /}" ] || return 0
		sleep 0.1
	done
	# shellcheck disable=SC2086
	kill -KILL $pids 2>/dev/null || true
}

down() {
	local pid ns
	if pid=$(live_pid "$DC_PIDFILE" "$DC_CONF"); then
		stop_pids "dovecot-netns:$pid"
	fi
	for ns in "$NS_CLI" "$NS_RTR" "$NS_SRV"; do
		kill_ns_pids "$ns"
		if ns_exists "$ns"; then
			ip netns del "$ns" || it_log "could not delete namespace $ns"
		fi
	done
	rm -rf "$DC_DIR/run" "$NETNS_ENV" "$NETNS_DIR/stamp"
	for ns in "$NS_CLI" "$NS_RTR" "$NS_SRV"; do
		if ns_exists "$ns"; then it_die "namespace $ns still exists after down"; fi
	done
}

make_namespaces() {
	local ns
	for ns in "$NS_CLI" "$NS_RTR" "$NS_SRV"; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
	done
	# Both ends of each veth are created inside the namespaces: the host's
	# namespace never sees them.
	ip link add pgc0 netns "$NS_CLI" type veth peer name pgc1 netns "$NS_RTR"
	ip link add pgs0 netns "$NS_SRV" type veth peer name pgs1 netns "$NS_RTR"

	ip -n "$NS_CLI" addr add "$CLI_ADDR/24" dev pgc0
	ip -n "$NS_CLI" addr add "$CLI_TPROXY_ADDR/24" dev pgc0
	ip -n "$NS_CLI" link set pgc0 up
	ip -n "$NS_CLI" route add default via "$RTR_CLI_ADDR"

	ip -n "$NS_SRV" addr add "$SRV_ADDR/24" dev pgs0
	ip -n "$NS_SRV" addr add "$SRV_DENIED_ADDR/32" dev pgs0
	ip -n "$NS_SRV" link set pgs0 up
	ip -n "$NS_SRV" route add default via "$RTR_SRV_ADDR"

	ip -n "$NS_RTR" addr add "$RTR_CLI_ADDR/24" dev pgc1
	ip -n "$NS_RTR" addr add "$RTR_SRV_ADDR/24" dev pgs1
	ip -n "$NS_RTR" link set pgc1 up
	ip -n "$NS_RTR" link set pgs1 up
	ip -n "$NS_RTR" route add "$SRV_DENIED_ADDR/32" via "$SRV_ADDR"

	# The router forwards; replies to spoofed sources must not be dropped
	# by reverse-path filtering. These sysctls are per namespace.
	in_ns "$NS_RTR" sysctl -qw net.ipv4.ip_forward=1 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
		net.ipv4.conf.pgc1.rp_filter=0 net.ipv4.conf.pgs1.rp_filter=0 net.ipv4.conf.lo.rp_filter=0
	# TPROXY: marked packets are delivered locally (to popgate's socket).
	ip -n "$NS_RTR" rule add fwmark "$TPROXY_MARK" lookup "$TPROXY_TABLE"
	ip -n "$NS_RTR" route add local 0.0.0.0/0 dev lo table "$TPROXY_TABLE"

	in_ns "$NS_RTR" nft -f - <<NFT
table ip popgate_it {
	counter redirect_in {}
	counter tproxy_in {}
	chain prerouting_mangle {
		type filter hook prerouting priority mangle; policy accept;
		meta l4proto tcp socket transparent 1 meta mark set $TPROXY_MARK accept
		ip saddr $CLI_TPROXY_ADDR tcp dport 110 ct state new counter name "tproxy_in"
		ip saddr $CLI_TPROXY_ADDR tcp dport 110 tproxy to :$TPROXY_PORT meta mark set $TPROXY_MARK accept
	}
	chain prerouting_nat {
		type nat hook prerouting priority dstnat; policy accept;
		ip saddr $CLI_ADDR tcp dport 110 redirect to :$REDIRECT_PORT
	}
	chain input {
		type filter hook input priority filter; policy accept;
		tcp dport $REDIRECT_PORT ct state new counter name "redirect_in"
	}
}
NFT
	in_ns "$NS_SRV" nft -f - <<NFT
table ip popgate_it {
	counter pop3_allowed {}
	counter pop3_denied {}
	chain input {
		type filter hook input priority filter; policy accept;
		ip daddr $SRV_ADDR tcp dport 110 ct state new counter name "pop3_allowed"
		ip daddr $SRV_DENIED_ADDR tcp dport 110 ct state new counter name "pop3_denied"
	}
}
NFT
}

start_dovecot() {
	local uid gid mkmail templates
	mkmail=$(env_get MKMAIL) || true
	templates=$(env_get TEMPLATE_DIR) || true
	[ -x "$mkmail" ] && [ -d "$templates" ] || it_die "no mkmail or templates in $ENV_FILE: run integration/start.sh first"
	read -r uid gid < <(mail_ids)
	mkdir -p "$DC_DIR/state"
	"$mkmail" passwd -instance a -out "$DC_DIR/passwd"
	rm -rf "$NETNS_MAIL"
	"$mkmail" seed -instance a -root "$NETNS_MAIL" -templates "$templates" -uid "$uid" -gid "$gid" alice virus
	{
		# No login_trusted_networks: Dovecot's rip is the TCP peer, never a
		# forwarded address (XCLIENT), so rip= proves who really connected.
		dovecot_conf netns "$DC_DIR/passwd" "$NETNS_MAIL" "$GREETING" ""
		cat <<EOF
# The server namespace's addresses (overrides the loopback listen above).
listen = $SRV_ADDR, $SRV_DENIED_ADDR
ssl = no
service pop3-login {
  inet_listener pop3 {
    port = 110
  }
  inet_listener pop3s {
    port = 0
  }
}
EOF
	} >"$DC_CONF"
	[ -f "$DC_DIR/dovecot.log" ] && mv -f "$DC_DIR/dovecot.log" "$DC_DIR/dovecot.log.old"
	doveconf -c "$DC_CONF" -n >/dev/null || it_die "bad Dovecot config $DC_CONF"
	if ! in_ns "$NS_SRV" dovecot -c "$DC_CONF" </dev/null >/dev/null 2>"$DC_DIR/dovecot.err" 8>&- 9>&-; then
		cat "$DC_DIR/dovecot.err" >&2
		it_die "dovecot failed to start in $NS_SRV; see $DC_DIR/dovecot.log"
	fi
	local i
	for i in $(seq 1 200); do
		if ns_greets; then return 0; fi
		sleep 0.1
	done
	it_die "Dovecot in $NS_SRV not answering on $SRV_ADDR:110 after 20 s"
}

write_env() {
	local tmp
	tmp=$(mktemp "$NETNS_ENV.XXXXXX")
	cat >"$tmp" <<EOF
# netns.sh: the interception tests' namespaces
NETNS_CLIENT=$NS_CLI
NETNS_ROUTER=$NS_RTR
NETNS_SERVER=$NS_SRV
NETNS_CLIENT_ADDR=$CLI_ADDR
NETNS_CLIENT_TPROXY_ADDR=$CLI_TPROXY_ADDR
NETNS_ROUTER_ADDR=$RTR_CLI_ADDR
NETNS_ROUTER_SERVER_SIDE_ADDR=$RTR_SRV_ADDR
NETNS_SERVER_ADDR=$SRV_ADDR
NETNS_SERVER_DENIED_ADDR=$SRV_DENIED_ADDR
NETNS_REDIRECT_PORT=$REDIRECT_PORT
NETNS_TPROXY_PORT=$TPROXY_PORT
NETNS_GREETING=$GREETING
NETNS_DOVECOT_CONF=$DC_CONF
NETNS_DOVECOT_LOG=$DC_DIR/dovecot.log
NETNS_DOVECOT_PASSWD=$DC_DIR/passwd
NETNS_MAIL_ROOT=$NETNS_MAIL
EOF
	chmod 0644 "$tmp"
	mv -f "$tmp" "$NETNS_ENV"
}

up() {
	if healthy; then
		it_log "already up; env in $NETNS_ENV"
		return 0
	fi
	down
	# From here on a failure leaves nothing behind.
	trap 'rc=$?; trap - EXIT; if [ $rc != 0 ]; then it_log "up failed; tearing down"; down || true; fi; exit $rc' EXIT
	make_namespaces
	start_dovecot
	write_env
	stamp >"$NETNS_DIR/stamp"
	trap - EXIT
	it_log "up; env in $NETNS_ENV"
}

[ "$(id -u)" = 0 ] || it_die "must run as root (network namespaces, nftables, Dovecot)"
for bin in ip nft dovecot doveconf flock timeout sha256sum; do
	command -v "$bin" >/dev/null 2>&1 || it_die "$bin not found: run integration/setup.sh first"
done
mkdir -p "$NETNS_DIR"
exec 9>"$NETNS_DIR/.lock"
flock -w 60 9 || it_die "another netns.sh holds $NETNS_DIR/.lock"
case ${1:-} in
up) up ;;
down) down ;;
status) healthy ;;
*) it_die "usage: $0 up|down|status" ;;
esac
