#!/bin/sh
# Issue 10, point 4, as reported: a source with --max-bandwidth 20M and
# --migration-timeout 5 towards a destination process that is SIGSTOPped
# once pages flow. Its kernel keeps the connections open with their windows
# shut, so the source's workers block in sendmsg(); the migration-timeout
# must still end the migration `cancelled`, about 5 s after it started
# (the bound below, 12 s, only catches a hang: before the fix the source
# was still active 35 s later). The stopped destination is always let go
# and killed.
#
#   stopped-dest.sh TERN_LOOPBACK
set -u
lb=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-stopped-dest.XXXXXX") || exit 1
dst=""
cleanup() {
	if [ -n "$dst" ]; then
		kill -CONT "$dst" 2>/dev/null
		kill -KILL "$dst" 2>/dev/null
		wait "$dst" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

sock="unix:$tmp/dst.sock"
"$lb" --incoming "$sock" --ram 128M -q >"$tmp/dst.out" 2>"$tmp/dst.err" &
dst=$!
i=0
while [ ! -S "$tmp/dst.sock" ] && [ "$i" -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
t0=$(date +%s%N)
"$lb" --migrate-to "$sock" --ram 128M --max-bandwidth 20M --migration-timeout 5 \
	--timeout 60 >"$tmp/src.out" 2>"$tmp/src.err" &
src=$!
# once pages flow: 20 MB/s for about a second
sleep 1.5
kill -STOP "$dst"
wait "$src"
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
echo "stopped-dest: source exited $rc after $ms ms"
grep -o '"status":"[a-z]*"\|"ram_transferred_bytes":[0-9]*\|"error":"[^"]*"' "$tmp/src.out"
if ! grep -q '"status":"cancelled"' "$tmp/src.out" ||
	! grep -q 'migration-timeout of 5 s reached' "$tmp/src.out"; then
	echo "stopped-dest: the source did not end cancelled by its migration-timeout" >&2
	cat "$tmp/src.err" >&2
	exit 1
fi
if [ "$ms" -gt 12000 ]; then
	echo "stopped-dest: took $ms ms, more than 12 s" >&2
	exit 1
fi
exit 0
