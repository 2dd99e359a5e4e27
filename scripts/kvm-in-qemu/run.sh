#!/usr/bin/env bash
# Run a static binary inside a QEMU/TCG guest that has a working /dev/kvm
# (kvm_amd on TCG-emulated SVM), and return its exit code.
#
#   scripts/kvm-in-qemu/run.sh <static-binary> [args...]
#
# Env:
#   KVMQ_DIR      appliance dir from build-initramfs.sh (default /tmp/kvmq/appliance;
#                 built on first use)
#   KVMQ_CPU      QEMU -cpu model (default: max)   e.g. EPYC,+svm  or  qemu64,+svm
#   KVMQ_MEM      guest RAM (default 1G)
#   KVMQ_APPEND   extra kernel cmdline, e.g. "kvm_amd.npt=0" or "kvmq.dmesg"
#   KVMQ_TIMEOUT  seconds before the guest is killed (default 600)
#   KVMQ_FILES    extra files to copy into the guest's / (space-separated paths)
#   KVMQ_TREE     a directory whose contents are laid over the guest's / as they are
#                 (same relative paths: TREE/usr/lib/x.so becomes /usr/lib/x.so)
#   KVMQ_SMP      guest vCPUs (default 1; QEMU runs them on host threads)
#   KVMQ_MONITOR  path of a Unix socket for the QEMU monitor (to look into a hung guest:
#                 e.g. `info registers -a` sent to it with socat or python)
# Prints the guest console to stdout. Exit code: the binary's, or 125 if the
# guest never reported one (boot failure, timeout, crash).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 <static-binary> [args...]" >&2; exit 2; }
BIN=$1; shift
DIR=${KVMQ_DIR:-/tmp/kvmq/appliance}
# The appliance (packages, kernel .deb) not being buildable here says nothing
# about the code under test: "no result" (125), like a guest that never boots.
# Rebuilt too when /init or the builder changed since (the kernel is kept).
if ! { [ -f "$DIR/vmlinuz" ] && [ -f "$DIR/base.cpio.gz" ] &&
	[ "$DIR/base.cpio.gz" -nt "$HERE/init" ] &&
	[ "$DIR/base.cpio.gz" -nt "$HERE/build-initramfs.sh" ]; }; then
	"$HERE/build-initramfs.sh" "$DIR" >&2 || {
		echo "kvm-in-qemu: building the appliance in $DIR failed" >&2
		exit 125
	}
fi

WORK=$(mktemp -d /tmp/kvmq-run.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/tree"
cp "$BIN" "$WORK/tree/run-test"
chmod +x "$WORK/tree/run-test"
for f in ${KVMQ_FILES:-}; do cp -r "$f" "$WORK/tree/"; done
if [ -n "${KVMQ_TREE:-}" ]; then
	[ -d "$KVMQ_TREE" ] || { echo "KVMQ_TREE: $KVMQ_TREE is not a directory" >&2; exit 2; }
	cp -a "$KVMQ_TREE/." "$WORK/tree/"
fi
{
	printf 'set --'
	for a in "$@"; do printf " '%s'" "${a//\'/\'\\\'\'}"; done
	printf '\n'
} >"$WORK/tree/run-args"
# The kernel unpacks concatenated cpio archives in order: base, then the test.
(cd "$WORK/tree" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/test.cpio.gz"
cat "$DIR/base.cpio.gz" "$WORK/test.cpio.gz" >"$WORK/initrd"

KERNEL=$DIR/vmlinuz
[ -f "$DIR/vmlinux" ] && KERNEL=$DIR/vmlinux # PVH entry: no BIOS boot or decompression
BIOS=()
MON=()
[ -z "${KVMQ_MONITOR:-}" ] || MON=(-monitor "unix:$KVMQ_MONITOR,server=on,wait=off")
[ -f /usr/share/qemu/qboot.rom ] && BIOS=(-bios /usr/share/qemu/qboot.rom) # faster than SeaBIOS

set +e
timeout --foreground -k 5 "${KVMQ_TIMEOUT:-600}" \
	qemu-system-x86_64 "${BIOS[@]}" "${MON[@]}" -accel tcg -cpu "${KVMQ_CPU:-max}" -m "${KVMQ_MEM:-1G}" -smp "${KVMQ_SMP:-1}" \
	-nodefaults -no-user-config -display none -serial stdio -no-reboot \
	-kernel "$KERNEL" -initrd "$WORK/initrd" \
	-append "console=ttyS0 quiet loglevel=3 panic=-1 ${KVMQ_APPEND:-}" </dev/null |
	tee "$WORK/console.log"
set -e
rc=$(sed -n 's/^KVMQ-EXIT=\([0-9]*\).*/\1/p' "$WORK/console.log" | tail -1)
exit "${rc:-125}"
