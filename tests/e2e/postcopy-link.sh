#!/bin/sh
# Postcopy on a slow link, driven through the management socket (issue 13):
# network namespaces of our own joined by a veth pair shaped to 100 Mbit/s
# (netns_link.sh), so the pages left after the switch take seconds to come.
# The source's writer (32 MB/s into 32 MiB) outruns max-bandwidth 4 MB/s.
#
# cancel-refused: `ternctl postcopy` switches; in postcopy-active `ternctl
#   cancel` is refused, saying why, and the migration still completes on
#   both sides.
# source-killed: the source process dies in postcopy-active. The
#   destination, whose guest runs, must fail saying it cannot go on and how
#   many pages it lacks -- never `completed`.
#
# Everything is removed on every way out; skips (77) without root or ip/tc.
#
#   postcopy-link.sh TERN_LOOPBACK TERNCTL
set -u
lb=$1
ctl=$2
. "$(dirname "$0")/netns_link.sh"
netns_skip_unless_root
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-pc-link.XXXXXX") || exit 1
netns_link tpc 10.79.2 100mbit 64kb
uri=tcp:10.79.2.2:4482
fail=0

# start NAME: the destination, then the source, each with a management socket
start() {
	ip netns exec "$nd" "$lb" --incoming "$uri" --ram 64M --postcopy --dirty-rate 16M \
		--dirty-ws 32M --timeout 90 -q >"$tmp/$1.dst.out" 2>"$tmp/$1.dst.err" &
	dst=$!
	i=0
	while ! grep -q "listening on" "$tmp/$1.dst.err" 2>/dev/null && [ "$i" -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	ip netns exec "$ns" "$lb" --migrate-to "$uri" --ram 64M --zero-pct 10 --channels 2 \
		--postcopy --dirty-rate 32M --dirty-ws 32M --max-bandwidth 4M \
		--avail-switchover-bandwidth 4M --downtime-limit 300 --mgmt "$tmp/$1.sock" \
		--timeout 60 -q >"$tmp/$1.src.out" 2>"$tmp/$1.src.err" &
	src=$!
	i=0
	while [ ! -S "$tmp/$1.sock" ] && [ "$i" -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}

# wait_status SOCK STATUS: poll until the source says STATUS (10 s at most)
wait_status() {
	i=0
	while [ "$i" -lt 500 ]; do
		"$ctl" -s "$1" --json query 2>/dev/null | grep -q "\"status\":\"$2\"" && return 0
		sleep 0.02
		i=$((i + 1))
	done
	return 1
}

check() {
	if ! eval "$2"; then
		echo "$1: FAILED: $3" >&2
		for f in "$tmp/$1".*; do
			echo "--- $f" >&2
			tail -5 "$f" >&2
		done
		fail=1
	fi
}

# ---- cancel refused in postcopy ----
start cancel-refused
sleep 1
"$ctl" -s "$tmp/cancel-refused.sock" postcopy >"$tmp/cancel-refused.pc" 2>&1
check cancel-refused 'grep -q "switching to postcopy" "$tmp/cancel-refused.pc"' \
	"ternctl postcopy did not switch"
check cancel-refused 'wait_status "$tmp/cancel-refused.sock" postcopy-active' \
	"the source never showed postcopy-active"
"$ctl" -s "$tmp/cancel-refused.sock" cancel >"$tmp/cancel-refused.cancel" 2>&1
crc=$?
check cancel-refused '[ "$crc" = 1 ] && grep -q "refused in postcopy" "$tmp/cancel-refused.cancel"' \
	"cancel in postcopy: exit $crc, $(cat "$tmp/cancel-refused.cancel")"
wait "$src"
src_rc=$?
wait "$dst"
dst_rc=$?
dst=""
echo "cancel-refused: source exit $src_rc $(grep -o '"status":"[a-z-]*"\|"postcopy_ms":[0-9]*' "$tmp/cancel-refused.src.out" | tr '\n' ' ')"
echo "cancel-refused: destination exit $dst_rc $(grep -o '"status":"[a-z-]*"\|"postcopy_requests":[0-9]*\|"postcopy_latency_p99_us":[0-9]*' "$tmp/cancel-refused.dst.out" | tr '\n' ' ')"
check cancel-refused '[ "$src_rc" = 0 ] && grep -q "\"status\":\"completed\"" "$tmp/cancel-refused.src.out"' \
	"the source did not complete"
check cancel-refused '[ "$dst_rc" = 0 ] && grep -q "\"status\":\"completed\"" "$tmp/cancel-refused.dst.out"' \
	"the destination did not complete"

# ---- the source dies in postcopy ----
start source-killed
sleep 1
"$ctl" -s "$tmp/source-killed.sock" postcopy >/dev/null 2>&1
check source-killed 'wait_status "$tmp/source-killed.sock" postcopy-active' \
	"the source never showed postcopy-active"
kill -KILL "$src"
wait "$src" 2>/dev/null
wait "$dst"
dst_rc=$?
dst=""
echo "source-killed: destination exit $dst_rc $(grep -o '"status":"[a-z-]*"\|"error":"[^"]*"' "$tmp/source-killed.dst.out" | tr '\n' ' ')"
check source-killed '[ "$dst_rc" != 0 ] && grep -q "\"status\":\"failed\"" "$tmp/source-killed.dst.out"' \
	"the destination did not fail"
check source-killed 'grep -q "postcopy: the guest runs here and cannot go on: [1-9][0-9]* of its pages are only on the source" "$tmp/source-killed.dst.out"' \
	"the destination's error does not say what was lost"
exit $fail
