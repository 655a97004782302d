#!/usr/bin/env bash
# stop.sh - stop popgate's integration environment: the Dovecot instances and
# clamd that start.sh recorded in their pid files (never anything found by
# name), and Pebble through integration/pebble.sh if that script exists.
# Removes start.sh's keys from the env file; keeps the mailboxes, logs and
# certificates under $POPGATE_IT_DIR for inspection. Quiet on success.
#
# Usage: integration/stop.sh
set -euo pipefail
# shellcheck source=integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -d "$IT_DIR" ] || exit 0
(
	flock 8
	stop_all
	if [ -f "$ENV_FILE" ]; then
		set_env_lines
	fi
) 8>"$IT_DIR/.start.lock"
bash "$IT_HERE/pools.sh" stop 2>/dev/null || it_log "pools.sh stop failed"
if [ -f "$IT_HERE/pebble.sh" ]; then
	bash "$IT_HERE/pebble.sh" stop 2>/dev/null || it_log "pebble.sh stop failed"
fi
