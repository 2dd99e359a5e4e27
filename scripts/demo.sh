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
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build

if [ ! -e /dev/kvm ]; then
	echo "demo: no /dev/kvm on this host: running the job in a QEMU/TCG VM that has one" >&2
	echo "demo: (a real KVM guest of 128 MiB; speeds there are TCG's, not this host's)" >&2
	KVMQ_BENCH_ARGS="--ram 128M --dirty-rate 8M --dirty-ws 16M --out /dev/null --no-plots $*" \
		exec scripts/kvm-in-qemu/run-suite.sh build tern-bench
fi
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "demo: /dev/kvm exists but is not readable and writable by $(id -un):" >&2
	echo "demo: run as root or join the group that owns it ($(stat -c %G /dev/kvm))" >&2
	exit 2
fi
exec build/bench/tern-bench "$@"
