#!/usr/bin/env bash
# Build a QEMU/TCG test appliance that has a working /dev/kvm inside it
# (nested SVM emulated by TCG), for machines without /dev/kvm.
#
#   scripts/kvm-in-qemu/build-initramfs.sh [OUTDIR]     (default: /tmp/kvmq/appliance)
#
# Produces OUTDIR/vmlinuz (+ OUTDIR/vmlinux, its ELF, for fast PVH boot) and OUTDIR/base.cpio.gz (busybox + kvm modules + /init).
# Needs (Debian 12): qemu-system-x86 busybox-static cpio  (installed if missing).
# The kernel comes from Debian's linux-image-amd64 package: the .deb is fetched with
# `apt-get download` and unpacked into OUTDIR (nothing is installed into /boot).
set -euo pipefail
OUT=${1:-/tmp/kvmq/appliance}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx insmod || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
if [ ${#need[@]} -gt 0 ]; then
	[ -n "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v lock)" ] || apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# busybox must be static (it runs alone in the initramfs)
if file -L /bin/busybox 2>/dev/null | grep -q dynamic; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends busybox-static
fi

# --- kernel + modules ---------------------------------------------------------
KDIR=$OUT/kernel
if [ ! -f "$OUT/vmlinuz" ]; then
	[ -n "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v lock)" ] || apt-get update -q
	# linux-image-amd64 is a metapackage; find the real image package
	pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
	[ -n "$pkg" ] || { echo "cannot resolve linux-image-amd64" >&2; exit 1; }
	rm -rf "$KDIR" && mkdir -p "$KDIR"
	(cd "$KDIR" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
	dpkg-deb -x "$KDIR"/"$pkg"_*.deb "$KDIR/root"
	rm -f "$KDIR"/*.deb
	cp "$KDIR"/root/boot/vmlinuz-* "$OUT/vmlinuz"
fi
# An uncompressed ELF vmlinux boots through PVH and skips the bzImage's
# self-decompression, which under TCG costs several seconds per boot.
if [ ! -f "$OUT/vmlinux" ]; then
	python3 - "$OUT/vmlinuz" "$OUT/vmlinux.tmp" <<'PY' && mv "$OUT/vmlinux.tmp" "$OUT/vmlinux" || rm -f "$OUT/vmlinux.tmp"
import lzma, sys
d = open(sys.argv[1], "rb").read()
i = d.find(b"\xfd7zXZ\x00")
out = lzma.LZMADecompressor().decompress(d[i:]) if i >= 0 else b""
if out[:4] != b"\x7fELF":
    sys.exit("vmlinuz is not xz-compressed; boot the bzImage instead")
open(sys.argv[2], "wb").write(out)
PY
fi
MODROOT=$(echo "$KDIR"/root/lib/modules/*)
[ -d "$MODROOT" ] || { echo "no modules under $KDIR" >&2; exit 1; }

# --- initramfs tree -----------------------------------------------------------
T=$OUT/tree
rm -rf "$T"
mkdir -p "$T"/{bin,sbin,proc,sys,dev,tmp,run,lib/kvm}
cp /bin/busybox "$T/bin/busybox"
for a in $("$T/bin/busybox" --list); do
	[ -e "$T/bin/$a" ] || ln -s busybox "$T/bin/$a"
done
# load order matters (dependencies first); modules may be .ko, .ko.xz or .ko.zst
for m in virt/lib/irqbypass drivers/crypto/ccp/ccp arch/x86/kvm/kvm arch/x86/kvm/kvm-amd; do
	src=$(ls "$MODROOT/kernel/$m".ko* | head -1)
	dst=$T/lib/kvm/$(basename "$m").ko
	case "$src" in
	*.xz) xz -dc "$src" >"$dst" ;;
	*.zst) zstd -qdc "$src" >"$dst" ;;
	*) cp "$src" "$dst" ;;
	esac
done
cp "$HERE/init" "$T/init"
chmod +x "$T/init"
(cd "$T" && find . | cpio -o -H newc --quiet | gzip -1) >"$OUT/base.cpio.gz"
echo "appliance: $OUT/vmlinuz $OUT/base.cpio.gz ($(du -h "$OUT/base.cpio.gz" | cut -f1))"
