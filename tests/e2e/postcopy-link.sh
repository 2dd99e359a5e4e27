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
#   destination, whose guest runs, pauses (it cannot tell a dead source from
#   a broken link), and once postcopy-recover-timeout (2 s) passed without a
#   recovery it fails saying it cannot go on and how many pages it lacks --
#   never `completed`.
# recover: the link goes down in postcopy-active. Both sides must show
#   postcopy-paused (io-timeout 2 s); a resume to the wrong peer (a fresh
#   destination, not in postcopy) is refused with the reason and the source
#   stays paused; `ternctl recover` on the destination and `ternctl resume`
#   on the source then finish it: both completed, the digests equal (the
#   destination's guest only reads), one pause and one recovery counted.
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

# start NAME [options for both sides]: the destination, then the source,
# each with a management socket
start() {
	name=$1
	shift
	q=-q
	[ "$name" = recover ] && q="" # its warnings are checked
	ip netns exec "$nd" "$lb" --incoming "$uri" --ram 64M --postcopy --dirty-rate 16M \
		--dirty-ws 32M --timeout 90 $q --mgmt "$tmp/$name.dsock" "$@" \
		>"$tmp/$name.dst.out" 2>"$tmp/$name.dst.err" &
	dst=$!
	i=0
	while ! grep -q "listening on" "$tmp/$name.dst.err" 2>/dev/null && [ "$i" -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	ip netns exec "$ns" "$lb" --migrate-to "$uri" --ram 64M --zero-pct 10 --channels 2 \
		--postcopy --dirty-rate 32M --dirty-ws 32M --max-bandwidth 4M \
		--avail-switchover-bandwidth 4M --downtime-limit 300 --mgmt "$tmp/$name.sock" \
		--timeout 60 $q "$@" >"$tmp/$name.src.out" 2>"$tmp/$name.src.err" &
	src=$!
	i=0
	while [ ! -S "$tmp/$name.sock" ] && [ "$i" -lt 100 ]; do
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
start source-killed --postcopy-recover-timeout 2000
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
check source-killed 'grep -q "postcopy: the guest runs here and cannot go on: [1-9][0-9]* of its pages are only on the source: no recovery within postcopy-recover-timeout" "$tmp/source-killed.dst.out"' \
	"the destination's error does not say what was lost, and why"
check source-killed 'grep -q "\"postcopy_pauses\":1," "$tmp/source-killed.dst.out"' \
	"the destination did not pause first"

# ---- the link breaks in postcopy; a wrong resume, then recover + resume ----
# wait_both S1 S2 STATUS: both sockets say STATUS (20 s at most)
wait_both() {
	j=0
	while [ "$j" -lt 40 ]; do
		wait_status "$1" "$3" && wait_status "$2" "$3" && return 0
		j=$((j + 1))
	done
	return 1
}
start recover --io-timeout 2000 --verify --dest-guest read
sleep 1
"$ctl" -s "$tmp/recover.sock" postcopy >/dev/null 2>&1
check recover 'wait_status "$tmp/recover.sock" postcopy-active' \
	"the source never showed postcopy-active"
ip -n "$ns" link set "tpc$$s" down
check recover 'wait_both "$tmp/recover.sock" "$tmp/recover.dsock" postcopy-paused' \
	"both sides did not show postcopy-paused after the link went down"
ip -n "$ns" link set "tpc$$s" up
# a fresh destination on another port: not this migration's
ip netns exec "$nd" "$lb" --incoming tcp:10.79.2.2:4490 --ram 64M --postcopy --timeout 30 -q \
	>"$tmp/recover.wrong.out" 2>"$tmp/recover.wrong.err" &
wrong=$!
sleep 0.5
"$ctl" -s "$tmp/recover.sock" resume tcp:10.79.2.2:4490 >"$tmp/recover.resume1" 2>&1
check recover 'wait_status "$tmp/recover.sock" postcopy-paused && sleep 1 && wait_status "$tmp/recover.sock" postcopy-paused' \
	"the source did not stay paused after a resume to the wrong peer"
check recover 'grep -q "resume to tcp:10.79.2.2:4490: .*no postcopy to recover here" "$tmp/recover.src.err"' \
	"the source does not say why the wrong peer refused it"
kill "$wrong" 2>/dev/null
wait "$wrong" 2>/dev/null
"$ctl" -s "$tmp/recover.dsock" recover tcp:10.79.2.2:4483 >"$tmp/recover.recover" 2>&1
rrc=$?
"$ctl" -s "$tmp/recover.sock" resume tcp:10.79.2.2:4483 >"$tmp/recover.resume2" 2>&1
src_rc_rs=$?
check recover '[ "$rrc" = 0 ] && [ "$src_rc_rs" = 0 ]' \
	"recover exit $rrc, resume exit $src_rc_rs: $(cat "$tmp/recover.recover" "$tmp/recover.resume2")"
wait "$src"
src_rc=$?
wait "$dst"
dst_rc=$?
dst=""
echo "recover: source exit $src_rc $(grep -o '"status":"[a-z-]*"\|"verified":[a-z]*\|"postcopy_pauses":[0-9]*\|"postcopy_recoveries":[0-9]*\|"postcopy_paused_ms":[0-9]*' "$tmp/recover.src.out" | tr '\n' ' ')"
echo "recover: destination exit $dst_rc $(grep -o '"status":"[a-z-]*"\|"postcopy_pauses":[0-9]*\|"postcopy_recoveries":[0-9]*\|"postcopy_paused_ms":[0-9]*\|"postcopy_requests":[0-9]*' "$tmp/recover.dst.out" | tr '\n' ' ')"
check recover '[ "$src_rc" = 0 ] && grep -q "\"status\":\"completed\",\"verified\":true" "$tmp/recover.src.out"' \
	"the source did not complete verified"
check recover '[ "$dst_rc" = 0 ] && grep -q "\"status\":\"completed\"" "$tmp/recover.dst.out"' \
	"the destination did not complete"
check recover 'grep -q "\"postcopy_pauses\":1,\"postcopy_recoveries\":1" "$tmp/recover.src.out" && grep -q "\"postcopy_pauses\":1,\"postcopy_recoveries\":1" "$tmp/recover.dst.out"' \
	"one pause and one recovery on each side"
exit $fail
