#!/bin/sh
# CPU cost of zero-copy-send against plain writev (issue 12): tern-loopback
# migrations of --ram of random pages (no writer: the source's CPU is the
# data plane's) with and without --zero-copy-send, interleaved, RUNS of each,
# over one link:
#
#   loopback     127.0.0.1 in the caller's namespace
#   veth         two namespaces of our own (tzcb-<pid>-s / -d) joined by a
#                veth pair, unshaped
#   veth-RATE    the same with tbf rate RATE (e.g. veth-1gbit) on both ends
#
# One line per run, then per mode the medians of: the source's CPU seconds
# (user + sys, and each) per GiB of page data sent, the destination's, the
# throughput, and the kernel's zero-copy figures (sends, copied).
#
#   zerocopy-cpu.sh TERN_LOOPBACK LINK [RUNS=5] [RAM=1G] [CHANNELS=2]
set -u
lb=$1
link=$2
runs=${3:-5}
ram=${4:-1G}
chans=${5:-2}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-zc-bench.XXXXXX") || exit 1
ns=tzcb-$$-s
nd=tzcb-$$-d
dst=""
cleanup() {
	[ -n "$dst" ] && kill -KILL "$dst" 2>/dev/null && wait "$dst" 2>/dev/null
	if [ "$link" != loopback ]; then
		ip netns del "$ns" 2>/dev/null
		ip netns del "$nd" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

case "$link" in
loopback)
	in_src=""
	in_dst=""
	host=127.0.0.1
	;;
veth | veth-*)
	ip netns add "$ns" && ip netns add "$nd" &&
		ip link add "b$$s" netns "$ns" type veth peer name "b$$d" netns "$nd" &&
		ip -n "$ns" addr add 10.79.1.1/30 dev "b$$s" &&
		ip -n "$nd" addr add 10.79.1.2/30 dev "b$$d" || exit 1
	for side in "$ns b$$s" "$nd b$$d"; do
		set -- $side
		ip -n "$1" link set lo up && ip -n "$1" link set "$2" up || exit 1
		if [ "$link" != veth ]; then
			tc -n "$1" qdisc add dev "$2" root tbf rate "${link#veth-}" burst 256kb \
				latency 10ms || exit 1
		fi
	done
	in_src="ip netns exec $ns"
	in_dst="ip netns exec $nd"
	host=10.79.1.2
	;;
*)
	echo "link: loopback, veth or veth-RATE" >&2
	exit 2
	;;
esac

field() { # field NAME FILE
	sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$2" | head -n 1
}

port=4600
run() { # run MODE: one migration; appends a line to $tmp/MODE
	mode=$1
	port=$((port + 1))
	uri=tcp:$host:$port
	rm -f "$tmp/dst.err"
	$in_dst "$lb" --incoming "$uri" --ram "$ram" --channels "$chans" --timeout 120 -q \
		>"$tmp/dst.out" 2>"$tmp/dst.err" &
	dst=$!
	w=0 # not i: the caller's loop counter (sh has no locals)
	while ! grep -q "listening on" "$tmp/dst.err" 2>/dev/null && [ "$w" -lt 100 ]; do
		sleep 0.1
		w=$((w + 1))
	done
	extra=""
	[ "$mode" = zerocopy ] && extra=--zero-copy-send
	$in_src "$lb" --migrate-to "$uri" --ram "$ram" --channels "$chans" --zero-pct 0 \
		--timeout 120 -q $extra >"$tmp/src.out" 2>"$tmp/src.err"
	wait "$dst"
	dst=""
	if ! grep -q '"status":"completed"' "$tmp/src.out"; then
		echo "$mode: run failed" >&2
		cat "$tmp/src.out" "$tmp/src.err" >&2
		exit 1
	fi
	bytes=$(field ram_transferred_bytes "$tmp/src.out")
	awk -v mode="$mode" -v b="$bytes" -v su="$(field cpu_user_us "$tmp/src.out")" \
		-v ss="$(field cpu_sys_us "$tmp/src.out")" \
		-v du="$(field cpu_user_us "$tmp/dst.out")" \
		-v ds="$(field cpu_sys_us "$tmp/dst.out")" -v ms="$(field total_ms "$tmp/src.out")" \
		-v zs="$(field zero_copy_sends "$tmp/src.out")" \
		-v zc="$(field zero_copy_copied "$tmp/src.out")" \
		-v zf="$(field zero_copy_fallbacks "$tmp/src.out")" 'BEGIN {
		g = b / 1073741824
		printf "%s src_cpu_s_per_gib %.4f user %.4f sys %.4f dst_cpu_s_per_gib %.4f " \
		       "MB/s %.0f zc_sends %d zc_copied %d zc_fallbacks %d\n", mode,
		       (su + ss) / 1e6 / g, su / 1e6 / g, ss / 1e6 / g, (du + ds) / 1e6 / g,
		       ms ? b / 1e3 / ms : 0, zs, zc, zf
	}' | tee -a "$tmp/$mode"
}

i=0
while [ "$i" -lt "$runs" ]; do
	# alternate which mode goes first, so neither always runs on a warmer machine
	if [ $((i % 2)) = 0 ]; then
		run writev
		run zerocopy
	else
		run zerocopy
		run writev
	fi
	i=$((i + 1))
done

median() { # median COLUMN FILE
	awk -v c="$1" '{ print $c }' "$2" | sort -n |
		awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo "link=$link ram=$ram channels=$chans runs=$runs: medians"
for mode in writev zerocopy; do
	f=$tmp/$mode
	echo "$mode src_cpu_s_per_gib $(median 3 "$f") (user $(median 5 "$f") sys $(median 7 "$f"))" \
		"dst_cpu_s_per_gib $(median 9 "$f") MB/s $(median 11 "$f")" \
		"zc_sends $(median 13 "$f") zc_copied $(median 15 "$f") zc_fallbacks $(median 17 "$f")"
done
