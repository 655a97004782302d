#!/usr/bin/env bash
# seed.sh - reseed mailboxes of the running integration environment from
# their templates (hard links, so it is fast). Open sessions of those users
# are ended first (doveadm kick).
#
# Usage: integration/seed.sh [-b] [USER...]
#   -b    seed Dovecot instance B instead of A
#   USER  users to reseed; all users of the instance when none are given
set -euo pipefail
# shellcheck source=integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

instance=a
if [ "${1:-}" = -b ]; then
	instance=b
	shift
fi
mkmail=$(env_get MKMAIL) || it_die "no env file at $ENV_FILE: run integration/start.sh"
[ -n "$mkmail" ] || it_die "$ENV_FILE has no MKMAIL: run integration/start.sh"
# Sessions of the users are ended first (instance C serves A's mailboxes).
if [ $instance = a ]; then
	root=$(env_get MAIL_ROOT)
	confs=(-dovecot-conf "$(env_get DOVECOT_CONF)" -dovecot-conf "$(env_get DOVECOTC_CONF)")
else
	root=$(env_get MAIL_ROOT_B)
	confs=(-dovecot-conf "$(env_get DOVECOTB_CONF)")
fi
exec "$mkmail" seed -instance "$instance" -root "$root" -templates "$(env_get TEMPLATE_DIR)" \
	-uid "$(env_get MAIL_UID)" -gid "$(env_get MAIL_GID)" "${confs[@]}" "$@"
