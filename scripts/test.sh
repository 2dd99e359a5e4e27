#!/usr/bin/env bash
# The test command: install what is missing, build, and run every suite
# three times -- a gcc build (warnings are errors), clang with
# AddressSanitizer + UndefinedBehaviorSanitizer, and clang with
# ThreadSanitizer. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

echo "== style: clang-format =="
git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror

echo "== gcc build (werror) =="
[ -d build ] || meson setup build -Dwerror=true >/dev/null
ninja -C build
meson test -C build --print-errorlogs --num-processes 1

# The suites that need a real KVM (tests/kvm, tests/e2e_kvm) ran above when
# this host has /dev/kvm. Without it they reported SKIP; then run them in a
# QEMU/TCG VM that has a working /dev/kvm inside (emulated SVM, kvm_amd), on
# the gcc build's binaries. No result at all from the VM (exit 125: it did
# not boot, or the kernel package could not be fetched) is reported and
# skipped: that says nothing about our code. Any case that fails, fails.
echo "== real KVM suites =="
if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	echo "/dev/kvm is usable here: the kvm suites ran in the gcc build above"
elif [ "${TERN_SKIP_KVM_QEMU:-0}" = 1 ]; then
	echo "SKIPPED: no /dev/kvm, and TERN_SKIP_KVM_QEMU=1"
else
	set +e
	scripts/kvm-in-qemu/run-suite.sh build >/tmp/tern-kvmq.log 2>&1
	rc=$?
	set -e
	grep -E '^KVMQ-CASE|KVMQ: ' /tmp/tern-kvmq.log | awk '!seen[$0]++' || true
	if [ "$rc" = 125 ]; then
		tail -30 /tmp/tern-kvmq.log
		echo "SKIPPED: the QEMU/TCG VM gave no result (see above); real KVM suites not run"
	elif [ "$rc" != 0 ]; then
		tail -80 /tmp/tern-kvmq.log
		echo "FAILED: real KVM suites in the QEMU/TCG VM (exit $rc)"
		exit 1
	fi
fi

# Suite rdma (tests/rdma, the e2e cases over rdma:, tests/rdma_harness) ran
# above and skipped: its tests need TERN_RDMA_ADDR, an address on the netdev of
# an RDMA device. Where this host has one, run the suite on it; otherwise run
# it on soft devices, rxe and siw, in a QEMU/TCG VM (scripts/rdma-in-qemu/), on
# the gcc build's binaries. As for KVM: no result from the VM (exit 125) is
# reported and skipped; a case that fails, fails.
echo "== rdma suite =="
if rdma_host=$(scripts/rdma-in-qemu/host-device.sh); then
	read -r rdma_dev rdma_addr <<<"$rdma_host"
	echo "RDMA device $rdma_dev with address $rdma_addr here: suite rdma runs on it"
	TERN_RDMA_DEV=$rdma_dev TERN_RDMA_ADDR=$rdma_addr \
		meson test -C build --suite rdma --print-errorlogs --num-processes 1
elif [ "${TERN_SKIP_RDMA_QEMU:-0}" = 1 ]; then
	echo "SKIPPED: no RDMA device here, and TERN_SKIP_RDMA_QEMU=1"
else
	set +e
	scripts/rdma-in-qemu/run-suite.sh build >/tmp/tern-rdmaq.log 2>&1
	rc=$?
	set -e
	sed -n '/^==== rdma-in-qemu:/,$p' /tmp/tern-rdmaq.log
	if [ "$rc" = 125 ]; then
		tail -30 /tmp/tern-rdmaq.log
		echo "SKIPPED: the QEMU/TCG VM gave no result (see above); suite rdma not run"
	elif [ "$rc" != 0 ]; then
		tail -150 /tmp/tern-rdmaq.log
		echo "FAILED: suite rdma on rxe/siw in the QEMU/TCG VM (exit $rc; log /tmp/tern-rdmaq.log)"
		exit 1
	fi
fi

echo "== clang ASan+UBSan build =="
[ -d build-asan ] || CC=clang meson setup build-asan -Db_sanitize=address,undefined \
	-Db_lundef=false -Dbuildtype=debugoptimized -Dwerror=true >/dev/null
ninja -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson test -C build-asan --print-errorlogs --num-processes 1 --timeout-multiplier 3

echo "== clang TSan build =="
[ -d build-tsan ] || CC=clang meson setup build-tsan -Db_sanitize=thread -Db_lundef=false \
	-Dbuildtype=debugoptimized -Dwerror=true >/dev/null
ninja -C build-tsan
TSAN_OPTIONS=halt_on_error=1 meson test -C build-tsan --print-errorlogs --num-processes 1 \
	--timeout-multiplier 3
