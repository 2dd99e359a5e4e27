#!/bin/sh
# The switchover's rate on a shaped link (issue 14): two network namespaces
# of our own, tsw-<pid>-s and tsw-<pid>-d, joined by a veth pair
# (10.79.1.1/30 -- 10.79.1.2/30) shaped to 100 Mbit/s (12.5 MB/s) by a token
# bucket, tern-loopback on each side, max-bandwidth 10 MB/s just under it.
#
# link: nothing declared. The rounds' unthrottled tails get no more than the
#   link: the estimate must price the last round at no more than the link
#   ("link": the path is the limit, the rounds' rate, as before issue 14),
#   the migration complete, verified, with its downtime within the limit.
# wrong: avail-switchover-bandwidth 1 GB/s, 80 times what the link gives,
#   downtime-limit 100 ms, a writer dirtying 4 MB/s. The estimate believes
#   the declaration ("declared"); the migration must complete and verify,
#   and either keep the limit or say by how much and why (the source's log:
#   "exceeded downtime-limit ... avail-switchover-bandwidth").
#
# Everything is removed on every way out; skips (77) without root or ip/tc.
#
#   switchover-link.sh TERN_LOOPBACK
set -u
lb=$1
. "$(dirname "$0")/netns_link.sh"
netns_skip_unless_root
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-sw-link.XXXXXX") || exit 1
netns_link tsw 10.79.1 100mbit 64kb

fail=0
# run NAME DOWNTIME_LIMIT DIRTY_RATE [source options...]
run() {
	name=$1
	limit=$2
	rate=$3
	shift 3
	uri=tcp:10.79.1.2:4481
	ip netns exec "$nd" "$lb" --incoming "$uri" --ram 32M --verify --timeout 90 -q \
		>"$tmp/$name.dst.out" 2>"$tmp/$name.dst.err" &
	dst=$!
	i=0
	while ! grep -q "listening on" "$tmp/$name.dst.err" 2>/dev/null && [ "$i" -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	ip netns exec "$ns" "$lb" --migrate-to "$uri" --ram 32M --verify --channels 2 \
		--zero-pct 50 --dirty-rate "$rate" --dirty-ws 8M --max-bandwidth 10M \
		--downtime-limit "$limit" --timeout 60 "$@" \
		>"$tmp/$name.src.out" 2>"$tmp/$name.src.err"
	rc=$?
	wait "$dst"
	drc=$?
	dst=""
	printf '%s: ' "$name"
	grep -o '"status":"[a-z]*"\|"verified":[a-z]*\|"rounds":[0-9]*\|"downtime_ms":[0-9]*\|"downtime_ram_us":[0-9]*\|"expected_ram_us":[0-9]*\|"switchover_[a-z_]*":[0-9]*\|"switchover_rate":"[a-z-]*"' \
		"$tmp/$name.src.out" | tr '\n' ' '
	echo
	if [ "$rc" != 0 ] || [ "$drc" != 0 ] ||
		! grep -q '"status":"completed"' "$tmp/$name.src.out" ||
		! grep -q '"verified":true' "$tmp/$name.src.out"; then
		echo "$name: source exited $rc, destination $drc; not completed and verified" >&2
		return 1
	fi
	return 0
}
downtime_ms() {
	grep -o '"downtime_ms":[0-9]*' "$1" | head -1 | cut -d: -f2
}
show() {
	cat "$tmp/$1.src.err" "$tmp/$1.dst.err" >&2
}

if run link 300 1M; then
	# The path is the limit: the last round must be priced at no more than
	# it carries (12.5 MB/s, 10% slack) -- "link" once a tail was learned;
	# on a slow host (sanitizers) the rounds may end before one was, and
	# "max-bandwidth" or "measured" price at the rounds' rate all the same;
	# a first tail slowed by the host may also read "learned" below the
	# link (1 of about 10 runs: 6.2 MB/s) -- below is what matters.
	bps=$(grep -o '"switchover_bandwidth_bps":[0-9]*' "$tmp/link.src.out" | cut -d: -f2)
	if ! grep -q '"switchover_rate":"\(link\|max-bandwidth\|measured\|learned\)"' "$tmp/link.src.out" ||
		[ "${bps:-0}" -gt 13750000 ]; then
		echo "link: the estimate priced the last round above the link (${bps:-?} B/s)" >&2
		fail=1
	fi
	if [ "$(downtime_ms "$tmp/link.src.out")" -gt 300 ]; then
		echo "link: downtime over downtime-limit 300 ms" >&2
		fail=1
	fi
	[ "$fail" = 0 ] || show link
else
	show link
	fail=1
fi

if run wrong 100 4M --avail-switchover-bandwidth 1G; then
	if ! grep -q '"switchover_rate":"declared"' "$tmp/wrong.src.out"; then
		echo "wrong: the estimate did not use the declared rate" >&2
		fail=1
		show wrong
	elif [ "$(downtime_ms "$tmp/wrong.src.out")" -gt 100 ]; then
		if ! grep -q "exceeded downtime-limit 100 ms.*avail-switchover-bandwidth" \
			"$tmp/wrong.src.err"; then
			echo "wrong: downtime over the limit, and no report of why" >&2
			fail=1
			show wrong
		else
			grep "exceeded downtime-limit" "$tmp/wrong.src.err"
		fi
	fi
else
	show wrong
	fail=1
fi
exit "$fail"
