#!/usr/bin/env bash
# bench_audit_search.sh - how fast `popgate audit search` reads a big trail:
# the audit-search scenario of bench.sh, which calls it; it also runs on
# its own.
#
# Usage: integration/bench_audit_search.sh [quick|full] [DIR] [POPGATE]
#   full     (default) a 1 GiB trail; quick: 128 MiB
#   DIR      work directory (default: a new one under /tmp); the trail is
#            removed afterwards unless BENCH_KEEP_AUDIT=1
#   POPGATE  the popgate binary to measure (default: built from the tree)
#
# integration/auditgen writes a chained trail of realistic sessions (about
# 390 octets a record, eight sessions interleaved, alice's among 5,000
# users) spread over the last 28 days. The search is the README's example,
# "who read alice's mailbox, from where, and what did they delete":
#   popgate audit search --user alice --event retrieve,delete --since 30d
# It must find every retrieve and delete auditgen wrote for alice, with the
# chain ok, or the scenario fails. `popgate audit verify` on the same file
# is timed too, for comparison. One line per command goes to stdout:
# octets, seconds, GB/s (10^9 octets a second) and the load average.
set -euo pipefail

MODE=${1:-full}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
DIR=${2:-$(mktemp -d /tmp/popgate-audit-search-XXXX)}
POPGATE=${3:-}
case $MODE in
quick) SIZE=128MiB ;;
full) SIZE=1GiB ;;
*)
	echo "usage: $0 [quick|full] [DIR] [POPGATE]" >&2
	exit 2
	;;
esac
log() { printf 'bench_audit_search.sh: %s\n' "$*" >&2; }
mkdir -p "$DIR"
if [ -z "$POPGATE" ]; then
	(cd "$REPO" && go build -o "$DIR/popgate" .)
	POPGATE=$DIR/popgate
fi
(cd "$REPO" && go build -o "$DIR/auditgen" ./integration/auditgen)
TRAIL=$DIR/audit-search.jsonl
trap '[ "${BENCH_KEEP_AUDIT:-}" = 1 ] || rm -f "$TRAIL"' EXIT

log "writing a $SIZE trail to $TRAIL"
GEN=$("$DIR/auditgen" -out "$TRAIL" -size "$SIZE" -days 28)
get() { printf '%s\n' "$GEN" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
BYTES=$(get bytes)
WANT=$(($(get alice_retrieves) + $(get alice_deletes)))
sync

now() { date +%s.%N; }
rate() { # rate SECONDS: GB/s
	awk -v b="$BYTES" -v s="$1" 'BEGIN { printf "%.3f", b / s / 1e9 }'
}
report() { # report WHAT SECONDS
	printf 'audit-search: %s: %d octets (%s records) in %.2f s, %s GB/s (load %s)\n' \
		"$1" "$BYTES" "$(get records)" "$2" "$(rate "$2")" "$(cut -d' ' -f1-3 /proc/loadavg)"
}

# Warm the page cache, so the figure is the search's, not the disk's.
cat "$TRAIL" >/dev/null

t0=$(now)
"$POPGATE" audit search --user alice --event retrieve,delete --since 30d --json "$TRAIL" >"$DIR/found.jsonl" 2>"$DIR/search.err"
t1=$(now)
SEARCH_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
GOT=$(wc -l <"$DIR/found.jsonl")
OK=$(grep -c '"chain":"ok"' "$DIR/found.jsonl" || true)
report "--user alice --event retrieve,delete --since 30d ($GOT found)" "$SEARCH_S"

t0=$(now)
"$POPGATE" audit verify "$TRAIL" >/dev/null
t1=$(now)
report "audit verify" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"

if [ "$GOT" != "$WANT" ] || [ "$OK" != "$WANT" ]; then
	log "found $GOT records ($OK with chain ok), auditgen wrote $WANT; see $DIR/search.err"
	exit 1
fi
