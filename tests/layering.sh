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

# Every arrow points down (DESIGN.md, "Modules"): the leaves (codecs,
# transports, dirty-log providers) and util/ include nothing above them.
bad=$(grep -lE '#include "(core|multifd)/' compress/* tcp/* rdma/* kvm/* uffd/* util/* \
	2>/dev/null || true)
bad="$bad$(grep -lE '#include "(compress|tcp|rdma|kvm|uffd)/' util/* 2>/dev/null || true)"
if [ -n "$bad" ]; then
	echo "FAIL: a lower layer includes a higher one: $bad" >&2
	exit 1
fi
echo "layering: leaves and util/ include nothing above them"

# The worker channels speak one transport interface (util/transport.h) to
# stream and placement transports alike: multifd/ names no transport.
bad=$(grep -liE 'rdma|tcp/|tcp_|ibv_|rdma_' multifd/*.c multifd/*.h || true)
if [ -n "$bad" ]; then
	echo "FAIL: multifd/ names a transport: $bad" >&2
	grep -niE 'rdma|tcp/|tcp_|ibv_|rdma_' $bad >&2
	exit 1
fi
echo "layering: multifd/ names no transport"
