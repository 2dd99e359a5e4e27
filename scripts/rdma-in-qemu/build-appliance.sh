#!/usr/bin/env bash
# Build the QEMU/TCG appliance that has soft RDMA devices (rxe and siw) inside,
# for machines whose kernel has no RDMA (see README.md).
#
#   scripts/rdma-in-qemu/build-appliance.sh [OUTDIR]     (default: /tmp/rdmaq/appliance)
#
# Produces OUTDIR/vmlinux (ELF: PVH boot, no self-decompression under TCG) and
# OUTDIR/base.cpio.gz: busybox, /init, Debian 12's kernel modules for rdma_rxe,
# rdma_ucm, ib_uverbs and dummy, siw.ko (build-siw.sh: Debian does not ship it),
# rdma-core's libraries and the rxe/siw providers, and iproute2's ip and rdma.
# Nothing is installed: the .debs come from `apt-get download` into OUTDIR/debs.
#
# Cached: OUTDIR/stamp holds the package versions and a hash of this directory's
# scripts; when both match, nothing is done (about a second for apt-cache).
# Downloads are kept while the versions stay the same.
# Needs: qemu-system-x86 busybox-static cpio python3 make gcc (scripts/deps.sh).
set -euo pipefail
OUT=${1:-/tmp/rdmaq/appliance}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
MA=x86_64-linux-gnu

[ -n "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v lock)" ] || apt-get update -q
version() { apt-cache policy "$1" | awk '/Candidate:/{print $2}'; }

# --- what we would build: package names and versions ----------------------------
KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$KPKG" ] || { echo "build-appliance: cannot resolve linux-image-amd64" >&2; exit 1; }
KVER=${KPKG#linux-image-} # 6.1.0-57-amd64
KPKGVER=$(version "$KPKG") # 6.1.192-3
MM=$(cut -d. -f1,2 <<<"$KVER")
# userspace; their libraries resolve from these first, then from the host's
USER_PKGS="libibverbs1 ibverbs-providers librdmacm1 iproute2"
KERNEL_PKGS="$KPKG=$KPKGVER linux-headers-$KVER=$KPKGVER linux-headers-${KVER%-*}-common=$KPKGVER
linux-kbuild-$MM=$KPKGVER linux-source-$MM=$KPKGVER"
want_debs=$KERNEL_PKGS
for p in $USER_PKGS; do want_debs+=" $p=$(version "$p")"; done
want_debs=$(tr ' \n' '\n\n' <<<"$want_debs" | grep . | sort | tr '\n' ' ')
scripts_hash=$(cat "$HERE/build-appliance.sh" "$HERE/build-siw.sh" "$HERE/init" | sha256sum | cut -c1-16)
stamp="$want_debs scripts=$scripts_hash"
if [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$stamp" ] &&
	[ -f "$OUT/vmlinux" ] && [ -f "$OUT/base.cpio.gz" ]; then
	echo "appliance: $OUT is up to date (kernel $KVER)"
	exit 0
fi
rm -f "$OUT/stamp"

# --- downloads (kept while the versions stay the same) --------------------------
D=$OUT/debs
if [ "$(cat "$D/versions" 2>/dev/null)" != "$want_debs" ]; then
	rm -rf "$D" && mkdir -p "$D"
	# shellcheck disable=SC2086 # one word per package
	(cd "$D" && apt-get download -q $want_debs 2>&1 | grep -v 'Download is performed unsandboxed' || true)
	for p in $want_debs; do
		ls "$D/${p%%=*}"_*.deb >/dev/null 2>&1 || { echo "build-appliance: no .deb for $p" >&2; exit 1; }
	done
	echo "$want_debs" >"$D/versions"
fi

# --- kernel ---------------------------------------------------------------------
K=$OUT/kernel
rm -rf "$K" "$OUT/vmlinux" && mkdir -p "$K"
dpkg-deb -x "$D/${KPKG}"_*.deb "$K"
python3 - "$K/boot/vmlinuz-$KVER" "$OUT/vmlinux" <<'PY'
import lzma, sys
d = open(sys.argv[1], "rb").read()
i = d.find(b"\xfd7zXZ\x00")
out = lzma.LZMADecompressor().decompress(d[i:]) if i >= 0 else b""
if out[:4] != b"\x7fELF":
    sys.exit("vmlinuz is not xz-compressed: cannot make an ELF vmlinux for PVH boot")
open(sys.argv[2], "wb").write(out)
PY
MODROOT=$K/lib/modules/$KVER
busybox depmod -b "$K" "$KVER"

# --- siw.ko, out of tree, for this kernel ---------------------------------------
"$HERE/build-siw.sh" "$OUT" "$KVER" "$MM"

# --- userspace, unpacked --------------------------------------------------------
S=$OUT/stage
rm -rf "$S" && mkdir -p "$S"
for p in $USER_PKGS; do dpkg-deb -x "$D/$p"_*.deb "$S"; done

# --- the initramfs tree ---------------------------------------------------------
T=$OUT/tree
rm -rf "$T"
mkdir -p "$T"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,root,lib64,lib/$MA,usr/lib/$MA}
cp /bin/busybox "$T/bin/busybox"
for a in $("$T/bin/busybox" --list); do
	[ -e "$T/bin/$a" ] || ln -s busybox "$T/bin/$a"
done
for a in modprobe insmod rmmod lsmod; do ln -sf ../bin/busybox "$T/sbin/$a"; done
ln -s ../../bin/busybox "$T/usr/bin/env" # for #!/usr/bin/env scripts

# modules: what /init loads and their dependencies, at their usual paths
mods=()
for m in rdma_rxe rdma_ucm ib_uverbs dummy crc32_generic libcrc32c crc32c_generic; do
	line=$(grep -E "/$m\.ko(\.xz|\.zst)?:" "$MODROOT/modules.dep" | head -1) ||
		{ echo "build-appliance: no module $m in $KVER" >&2; exit 1; }
	mods+=("${line%%:*}")
	read -ra deps <<<"${line#*:}"
	mods+=("${deps[@]}")
done
for p in $(printf '%s\n' "${mods[@]}" | sort -u); do
	mkdir -p "$T/lib/modules/$KVER/$(dirname "$p")"
	cp "$MODROOT/$p" "$T/lib/modules/$KVER/$p"
done
mkdir -p "$T/lib/modules/$KVER/extra"
cp "$OUT/siw/siw.ko" "$T/lib/modules/$KVER/extra/"
cp "$MODROOT"/modules.builtin* "$MODROOT/modules.order" "$T/lib/modules/$KVER/"
busybox depmod -b "$T" "$KVER"

# iproute2's ip and rdma (busybox's own ip applet cannot make dummy links), the
# rxe and siw providers only (other providers' .driver files make libibverbs
# warn), and every library they need: the staged ones first, then the host's.
cp "$S/bin/ip" "$T/usr/sbin/ip"
cp "$S/usr/bin/rdma" "$T/usr/sbin/rdma"
mkdir -p "$T/usr/lib/$MA/libibverbs" "$T/etc/libibverbs.d"
for p in rxe siw; do
	cp "$S"/usr/lib/$MA/libibverbs/lib$p-rdmav*.so "$T/usr/lib/$MA/libibverbs/"
	cp "$S/etc/libibverbs.d/$p.driver" "$T/etc/libibverbs.d/"
done
for l in "$S"/usr/lib/$MA/lib{ibverbs,rdmacm}.so.*; do cp -a "$l" "$T/usr/lib/$MA/"; done
LDP=$S/usr/lib/$MA:$S/lib/$MA
for f in "$T"/usr/sbin/* "$T"/usr/lib/$MA/libibverbs/*.so "$T"/usr/lib/$MA/lib{ibverbs,rdmacm}.so.*; do
	out=$(LD_LIBRARY_PATH=$LDP ldd "$f")
	if grep -q 'not found' <<<"$out"; then
		echo "build-appliance: ldd $f: $out" >&2
		exit 1
	fi
	for l in $(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$out"); do
		case "$l" in "$S"/*) dst=$T/${l#"$S"/} ;; *) dst=$T$l ;; esac
		[ -e "$dst" ] || { mkdir -p "$(dirname "$dst")" && cp -L "$l" "$dst"; }
	done
done
# glibc dlopen()s libgcc_s for pthread_exit and pthread_cancel; ldd never lists it
cp -L /lib/$MA/libgcc_s.so.1 "$T/lib/$MA/"

printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/tmp:/bin/sh\n' >"$T/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$T/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$T/etc/hosts"
cp "$HERE/init" "$T/init"
chmod +x "$T/init"
(cd "$T" && find . | cpio -o -H newc --quiet | gzip -1) >"$OUT/base.cpio.gz"
echo "$stamp" >"$OUT/stamp"
echo "appliance: $OUT/vmlinux $OUT/base.cpio.gz ($(du -h "$OUT/base.cpio.gz" | cut -f1)); kernel $KVER, rxe + siw"
