#!/bin/sh
# The cancel race of issue 10 (point 5): tern-loopback cancels a migration
# that cannot converge (its writer dirties 400 MB/s over a 20 MB/s link and
# a 1 ms downtime limit) when its 1 s timeout runs out, while the writer
# thread still marks pages. The example used to free the session before it
# stopped the writer: a heap-use-after-free under ASan in about half of the
# runs, a SIGSEGV now and then without. Each run must now end on its own
# (exit 1: "timed out" is the expected outcome), with the source's JSON
# line, no signal, no sanitizer report and no libtern misuse message.
#
#   cancel-race.sh TERN_LOOPBACK REPS
set -u
lb=$1
reps=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-cancel-race.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0
t0=$(date +%s%N)
i=1
while [ "$i" -le "$reps" ]; do
	"$lb" --ram 32M --dirty-rate 400M --dirty-ws 8M --max-bandwidth 20M \
		--downtime-limit 1 --timeout 1 >"$tmp/out" 2>"$tmp/err"
	rc=$?
	why=""
	if [ "$rc" -gt 1 ]; then
		why="exit status $rc"
	elif grep -q -e 'AddressSanitizer' -e 'runtime error' -e 'LeakSanitizer' "$tmp/err"; then
		why="sanitizer report"
	elif grep -q '^libtern:' "$tmp/err"; then
		why="libtern misuse check fired"
	elif ! grep -q '"side":"source"' "$tmp/out"; then
		why="no source line"
	fi
	if [ -n "$why" ]; then
		echo "cancel-race: run $i of $reps: $why; its stderr:" >&2
		cat "$tmp/err" >&2
		fails=$((fails + 1))
	fi
	i=$((i + 1))
done
ms=$((($(date +%s%N) - t0) / 1000000))
echo "cancel-race: $fails of $reps runs failed, $ms ms"
[ "$fails" -eq 0 ]
