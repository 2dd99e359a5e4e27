#!/bin/sh
# zero-copy-send over a veth pair (issue 12): two network namespaces of our
# own, tzc-<pid>-s and tzc-<pid>-d, joined by a veth pair (10.79.0.1/30 --
# 10.79.0.2/30) shaped to 1 Gbit/s with a token bucket (bench/bench_link.c's
# numbers), a tern-loopback destination in one and a source with
# --zero-copy-send and a writer dirtying 16 MB/s in the other. The source must
# complete with verify-ram's digests equal and zero-copy sends counted; what
# the kernel copied anyway is printed, not asserted. Everything is removed on
# every way out (deleting a namespace deletes its end of the pair); a run
# takes a few seconds, bounded by --timeout. Skips (77) without root or ip/tc.
#
#   zerocopy-veth.sh TERN_LOOPBACK
set -u
lb=$1
. "$(dirname "$0")/netns_link.sh"
netns_skip_unless_root
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-zc-veth.XXXXXX") || exit 1
netns_link tzc 10.79.0 1gbit 256kb

uri=tcp:10.79.0.2:4479
ip netns exec "$nd" "$lb" --incoming "$uri" --ram 128M --verify --timeout 90 -q \
	>"$tmp/dst.out" 2>"$tmp/dst.err" &
dst=$!
i=0
while ! grep -q "listening on" "$tmp/dst.err" 2>/dev/null && [ "$i" -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
ip netns exec "$ns" "$lb" --migrate-to "$uri" --ram 128M --verify --zero-copy-send \
	--channels 2 --zero-pct 20 --dirty-rate 16M --dirty-ws 16M --timeout 60 -q \
	>"$tmp/src.out" 2>"$tmp/src.err"
rc=$?
wait "$dst"
drc=$?
dst=""
grep -o '"status":"[a-z]*"\|"verified":[a-z]*\|"zero_copy_[a-z]*":[0-9]*\|"rounds":[0-9]*\|"error":"[^"]*"' \
	"$tmp/src.out" | tr '\n' ' '
echo
fail=0
if [ "$rc" != 0 ] || [ "$drc" != 0 ] || ! grep -q '"status":"completed"' "$tmp/src.out" ||
	! grep -q '"verified":true' "$tmp/src.out"; then
	echo "zerocopy-veth: source exited $rc, destination $drc; not completed and verified" >&2
	fail=1
fi
if grep -q '"zero_copy_sends":0,' "$tmp/src.out" || ! grep -q '"zero_copy_sends"' "$tmp/src.out"; then
	echo "zerocopy-veth: no zero-copy send counted" >&2
	fail=1
fi
if [ "$fail" != 0 ]; then
	cat "$tmp/src.err" "$tmp/dst.err" "$tmp/dst.out" >&2
	exit 1
fi
exit 0
