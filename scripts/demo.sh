#!/usr/bin/env bash
# The main job: build everything into build/, then live-migrate a real KVM
# guest with tern-bench's default scenario -- a 1 GiB guest that keeps
# dirtying 64 MiB at 50 MB/s, moved between two tern-vm processes over
# loopback TCP on 2 worker channels with verify-ram -- and print the figures.
# Extra arguments go to tern-bench (e.g. --reps 5 --channels 4 --json).
# Needs /dev/kvm: without it this says so and exits 2 (it never fakes a run).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build

if [ ! -e /dev/kvm ]; then
	echo "demo: /dev/kvm does not exist: the main job runs a real KVM guest (tern-vm)" >&2
	echo "demo: run it on a host with KVM (kvm_intel/kvm_amd loaded, or nested KVM)" >&2
	exit 2
fi
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "demo: /dev/kvm exists but is not readable and writable by $(id -un):" >&2
	echo "demo: run as root or join the group that owns it ($(stat -c %G /dev/kvm))" >&2
	exit 2
fi
exec build/bench/tern-bench "$@"
