#!/usr/bin/env bash
# Build siw.ko (Soft-iWARP) for the appliance's kernel; build-appliance.sh calls it.
#
#   build-siw.sh OUTDIR KVER MM          e.g. /tmp/rdmaq/appliance 6.1.0-57-amd64 6.1
#
# Debian 12's kernel has CONFIG_RDMA_SIW unset, so drivers/infiniband/sw/siw is
# compiled out of tree from linux-source-MM against linux-headers-KVER, both of
# the kernel image's own version (already in OUTDIR/debs). Only the siw/ folder
# is unpacked from the source tarball. Leaves OUTDIR/siw/siw.ko; kept while
# the kernel and this script stay the same. The module is unsigned: the guest
# kernel loads it and taints itself, which is harmless in the appliance.
set -euo pipefail
OUT=$1 KVER=$2 MM=$3
HERE=$(cd "$(dirname "$0")" && pwd)
D=$OUT/debs
stamp="$KVER $(ls "$D"/linux-source-"$MM"_*.deb | xargs -n1 basename) $(sha256sum <"$HERE/build-siw.sh" | cut -c1-16)"
if [ -f "$OUT/siw/siw.ko" ] && [ "$(cat "$OUT/siw/stamp" 2>/dev/null)" = "$stamp" ]; then
	exit 0
fi
W=$OUT/siw-build
rm -rf "$W" "$OUT/siw" && mkdir -p "$W/root"
for d in "$D"/linux-headers-*.deb "$D"/linux-kbuild-*.deb; do dpkg-deb -x "$d" "$W/root"; done
HDR=$W/root/usr/src/linux-headers-$KVER
# its Makefile includes the -common tree by absolute path: point it at ours
sed -i "s|include /usr/src/|include $W/root/usr/src/|" "$HDR/Makefile"
dpkg-deb --fsys-tarfile "$D"/linux-source-"$MM"_*.deb |
	tar -xO "./usr/src/linux-source-$MM.tar.xz" |
	tar -xJ -C "$W" "linux-source-$MM/drivers/infiniband/sw/siw"
SRC=$W/linux-source-$MM/drivers/infiniband/sw/siw
make -s -C "$HDR" M="$SRC" CONFIG_RDMA_SIW=m -j"$(nproc)" modules
mkdir -p "$OUT/siw"
cp "$SRC/siw.ko" "$OUT/siw/siw.ko"
strip --strip-debug "$OUT/siw/siw.ko"
rm -rf "$W"
echo "$stamp" >"$OUT/siw/stamp"
echo "siw.ko built for $KVER:" \
	"$(strings -a "$OUT/siw/siw.ko" | grep -E '^(vermagic|depends)=' | tr '\n' ' ')"
