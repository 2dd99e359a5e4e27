#!/bin/sh
# Postcopy end to end (issue 13): tern-loopback pairs whose writer (64 MB/s
# into 16 MiB) outruns the link (max-bandwidth 8 MiB/s, and the switchover
# priced at the same: no round ever fits the downtime-limit), switched to
# postcopy after a second. Every case must complete on both sides, through
# postcopy, with the source paused no longer than the downtime-limit (300 ms).
#
# read-*: the destination's guest reads its working set from the switch on,
#   so it faults on pages still on the source and asks for them; it writes
#   nothing, so verify-ram's digests, compared at the end, must match: every
#   byte placed right, by the bulk stream or by a request. Requests must have
#   been made and answered (fault-to-placed latency measured).
# write-*: the destination's guest writes, as a guest does; its writes land
#   on pages that must first be fetched. Completed, requests answered, and
#   the guest did write while postcopy ran.
#
#   postcopy.sh TERN_LOOPBACK
set -u
lb=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-postcopy.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# field SIDE NAME FILE: the number (or true/false) NAME on SIDE's JSON line
field() {
	grep "\"side\":\"$1\"" "$3" | grep -o "\"$2\":[a-z0-9]*" | head -1 | cut -d: -f2
}

fail=0
# run NAME GUEST [options...]
run() {
	name=$1
	guest=$2
	shift 2
	timeout 120 "$lb" --ram 64M --zero-pct 20 --dirty-rate 64M --dirty-ws 16M \
		--max-bandwidth 8M --avail-switchover-bandwidth 8M --downtime-limit 300 \
		--dest-guest "$guest" --timeout 60 -q "$@" \
		>"$tmp/$name.out" 2>"$tmp/$name.err"
	rc=$?
	src_st=$(grep '"side":"source"' "$tmp/$name.out" | grep -o '"status":"[a-z-]*"')
	dst_st=$(grep '"side":"destination"' "$tmp/$name.out" | grep -o '"status":"[a-z-]*"')
	req=$(field destination postcopy_requests "$tmp/$name.out")
	lat=$(field destination postcopy_latency_p99_us "$tmp/$name.out")
	miss=$(field source postcopy_missing_pages "$tmp/$name.out")
	down=$(field source downtime_ms "$tmp/$name.out")
	pc=$(field source postcopy "$tmp/$name.out")
	dguest=$(field destination guest_pages "$tmp/$name.out")
	ver=$(field source verified "$tmp/$name.out")
	echo "$name: rc=$rc source $src_st destination $dst_st postcopy=$pc missing=$miss" \
		"requests=$req p99=${lat}us downtime=${down}ms dest-guest-pages=$dguest" \
		"verified=$ver"
	why=""
	[ "$rc" = 0 ] || why="$why exit $rc;"
	[ "$src_st" = '"status":"completed"' ] || why="$why source not completed;"
	[ "$dst_st" = '"status":"completed"' ] || why="$why destination not completed;"
	[ "$pc" = true ] || why="$why never went to postcopy;"
	[ "${miss:-0}" -gt 0 ] || why="$why no page was left for postcopy;"
	[ "${req:-0}" -gt 0 ] || why="$why the destination requested no page;"
	[ "${lat:-0}" -gt 0 ] || why="$why no fault latency measured;"
	[ "${down:-999999}" -le 300 ] || why="$why source paused ${down} ms > 300;"
	[ "${dguest:-0}" -gt 0 ] || why="$why the destination's guest did not run;"
	case "$name" in read-*)
		[ "$ver" = true ] || why="$why digests differ;" ;;
	esac
	if [ -n "$why" ]; then
		echo "$name: FAILED:$why" >&2
		sed 's/^/    /' "$tmp/$name.err" >&2
		fail=1
	fi
}

after="--postcopy-after 1000"
run read-tcp-ch1 read $after --channels 1 --verify
run read-tcp-ch4 read $after --channels 4 --verify
run read-unix-ch2-zstd read $after --channels 2 --transport unix --codec zstd --verify
run read-tcp-ch2-xbzrle read $after --channels 2 --codec xbzrle --verify
run write-tcp-ch2 write $after --channels 2
run write-tcp-ch4-zlib write $after --channels 4 --codec zlib
# migration-timeout-policy postcopy: the switch comes from the timeout
run read-tcp-ch2-timeout-policy read --postcopy --migration-timeout 1 \
	--timeout-policy postcopy --channels 2 --verify
exit $fail
