#!/bin/sh
# tern-bench stops both programs at once when one fails (issue 9): with a
# fake tern-vm whose source (then destination) fails at once and whose other
# side would wait 60 s, tern-bench must end in well under its grace for a
# destination (20 s), exit 1, name the failed side's error, and leave no
# process behind.
#
#   early-stop-test.sh TERN_BENCH FAKE_TERN_VM
set -u
bench=$1
fake=$2
[ -x "$fake" ] || {
	echo "early-stop-test: $fake is not executable" >&2
	exit 1
}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-early-stop.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0
bad() {
	echo "early-stop-test: FAIL ($mode fails first): $*" >&2
	fails=$((fails + 1))
}

for mode in source destination; do
	mkdir -p "$tmp/$mode"
	t0=$(date +%s%N)
	FAKE_VM_FAIL=$mode FAKE_VM_DIR="$tmp/$mode" "$bench" --vm "$fake" --ram 64M --timeout 60 \
		--out "$tmp/$mode/runs.jsonl" --no-plots >"$tmp/$mode/out" 2>&1
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	sed "s/^/  [$mode] /" "$tmp/$mode/out"
	echo "early-stop-test: $mode fails first: tern-bench exit $rc after $ms ms"
	[ "$rc" -eq 1 ] || bad "exit $rc, want 1"
	[ "$ms" -lt 5000 ] || bad "took $ms ms, want < 5000"
	grep -q "FAIL: .*fake-tern-vm fails as the $mode" "$tmp/$mode/out" ||
		bad "no run line with the $mode's error"
	grep -q "the $mode failed first" "$tmp/$mode/out" || bad "no word of who failed first"
	grep -q "\"first_error\": *\"[^\"]*fake-tern-vm fails as the $mode" "$tmp/$mode/runs.jsonl" ||
		bad "the record's first_error is not the $mode's error"
	for f in "$tmp/$mode"/*.pid; do
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		# tern-bench reaped its children; a sleep would be the fake's own orphan
		if kill -0 "$pid" 2>/dev/null; then
			bad "process $pid (${f##*/}) is still there"
			kill "$pid" 2>/dev/null
		fi
	done
	[ -e "$tmp/$mode/source.pid" ] && [ -e "$tmp/$mode/destination.pid" ] ||
		bad "the fake did not run as both sides"
done
[ "$fails" -eq 0 ] || exit 1
echo "early-stop-test: OK"
