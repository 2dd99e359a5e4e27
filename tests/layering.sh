#!/bin/sh
# The management server is a subscriber, not part of the state machine: no
# file of core/ but its own (mgmt.c, mgmt_cmd.c, mgmt.h) names it. Core
# reports session events to observe.c's list, whoever listens.
set -eu
cd "$1"
bad=$(grep -lE 'mgmt\.h|mgmt_|tern_mgmt_|struct mgmt_server' core/*.c core/*.h |
	grep -vE '^core/mgmt(_cmd)?\.[ch]$' || true)
if [ -n "$bad" ]; then
	echo "FAIL: core/ files that reach the management server: $bad" >&2
	grep -nE 'mgmt\.h|mgmt_|tern_mgmt_|struct mgmt_server' $bad >&2
	exit 1
fi
echo "layering: core/ reaches the management server only through observe.c"
