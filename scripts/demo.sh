#!/usr/bin/env bash
# The main job: build everything into build/, then live-migrate a real KVM
# guest with tern-bench's default scenario -- a 1 GiB guest that keeps
# dirtying 64 MiB at 50 MB/s, moved between two tern-vm processes over
# loopback TCP on 2 worker channels with verify-ram -- and print the figures.
# Extra arguments go to tern-bench (e.g. --reps 5 --channels 4 --json).
# Without /dev/kvm on this host, the same job runs inside a QEMU/TCG VM that
# has a /dev/kvm of its own (scripts/kvm-in-qemu): still a real KVM guest,
# smaller (128 MiB dirtying 16 MiB at 8 MB/s), since TCG runs it tens of times
# slower -- its speeds are TCG's, not this host's. It never fakes a run.
#
# Exit status: 0 only if every run completed (and verified); otherwise
# tern-bench's (1: a run failed, 2: usage, 130: interrupted), or in the QEMU
# VM run-suite's (1: failed, 125: the VM gave no result). A guest that cannot
# start on this KVM is a failed run, said once, not a figure.
#   TERN_DEMO_BUILD=DIR   the build directory (default build)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${TERN_DEMO_BUILD:-build}

scripts/deps.sh
[ -d "$B" ] || meson setup "$B" >/dev/null
ninja -C "$B"

rc=0
if [ ! -e /dev/kvm ]; then
	echo "demo: no /dev/kvm on this host: running the job in a QEMU/TCG VM that has one" >&2
	echo "demo: (a real KVM guest of 128 MiB; speeds there are TCG's, not this host's)" >&2
	KVMQ_BENCH_ARGS="--ram 128M --dirty-rate 8M --dirty-ws 16M --out /dev/null --no-plots $*" \
		scripts/kvm-in-qemu/run-suite.sh "$B" tern-bench || rc=$?
elif [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "demo: /dev/kvm exists but is not readable and writable by $(id -un):" >&2
	echo "demo: run as root or join the group that owns it ($(stat -c %G /dev/kvm))" >&2
	exit 2
else
	"$B/bench/tern-bench" "$@" || rc=$?
fi
# tern-bench's exit status is the verdict: a demo with no completed run must not look like one.
if [ "$rc" -ne 0 ]; then
	echo "demo: FAILED (exit $rc): not every run completed; the run lines above say why" >&2
fi
exit "$rc"
