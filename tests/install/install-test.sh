#!/bin/sh
# A VMM builds against the installed library the usual way (issue 9): install
# this build into a temporary DESTDIR, then compile pc_consumer.c with the
# build's own compiler and nothing but
#   $(pkg-config --cflags --libs tern)
# from that tree, run it against the installed libtern (not the build's), and
# check the tree: headers, tern.pc beside them, the library's soname.
#
#   install-test.sh BUILD_DIR MESON PKG_CONFIG SANITIZE SOURCE CC [CC_ARGS...]
#
# SANITIZE is the build's b_sanitize ("none", "address,undefined", ...): a
# sanitized libtern needs the same runtime in the program that loads it.
# Exit 77 (skip) only when pkg-config or the compiler is missing.
set -u
build=$1 meson=$2 pkgconf=$3 sanitize=$4 src=$5
shift 5
if [ -z "$pkgconf" ] || ! command -v "$pkgconf" >/dev/null 2>&1; then
	echo "install-test: SKIP: no pkg-config on this host" >&2
	exit 77
fi
if [ $# -eq 0 ] || ! command -v "$1" >/dev/null 2>&1; then
	echo "install-test: SKIP: no C compiler (${1:-none given})" >&2
	exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
die() {
	echo "install-test: FAIL: $*" >&2
	exit 1
}

# meson test built everything already; --no-rebuild keeps this from running
# ninja inside the test run.
"$meson" install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log" >&2; die "meson install --destdir failed"; }
pc=$(find "$tmp/root" -name tern.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pc" ] || die "no tern.pc installed"
pcdir=${pc%/*}
libdir=${pcdir%/pkgconfig}
inc=$(find "$tmp/root" -path '*/include/tern/tern.h' | head -n 1)
[ -n "$inc" ] || die "no include/tern/tern.h installed"
[ -f "${inc%/*}/kvm.h" ] || die "no include/tern/kvm.h installed"
echo "install-test: installed $pc, ${inc%/*}/"

# The sysroot prefixes the .pc's -I and -L with the DESTDIR, as for a cross
# sysroot; PKG_CONFIG_PATH is searched before the host's own directories,
# which still serve json-c, zlib and libzstd.
PKG_CONFIG_SYSROOT_DIR="$tmp/root"
PKG_CONFIG_PATH="$pcdir"
export PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH
static=
if [ -e "$libdir/libtern.so" ]; then
	soname=$(readelf -d "$libdir/libtern.so" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
	[ -z "$soname" ] || [ -e "$libdir/$soname" ] || die "soname $soname is not installed in $libdir"
	echo "install-test: shared libtern, soname ${soname:-?}"
	# what libtern.so really links must be what tern.pc names for --static
	needed=$(readelf -d "$libdir/libtern.so" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
	reqs=$("$pkgconf" --print-requires-private tern) || die "pkg-config --print-requires-private"
	for pair in libjson-c.so:json-c libz.so:zlib libzstd.so:libzstd; do
		case "$needed" in
		*"${pair%%:*}"*)
			echo "$reqs" | grep -q "^${pair#*:}\b" ||
				die "libtern.so needs ${pair%%:*} but Requires.private has no ${pair#*:}: $reqs"
			;;
		esac
	done
elif [ -e "$libdir/libtern.a" ]; then
	# a static-only build: the private dependencies are needed at link time
	static=--static
	echo "install-test: static-only libtern"
else
	die "neither libtern.so nor libtern.a in $libdir"
fi
flags=$("$pkgconf" --cflags --libs $static tern) || die "pkg-config --cflags --libs tern failed"
echo "install-test: pkg-config --cflags --libs $static tern: $flags"
case "$flags" in
*"$src"*) die "the flags name the source tree ($src)" ;;
esac
slibs=$("$pkgconf" --libs --static tern) || die "pkg-config --libs --static tern failed"
case "$slibs" in
*-pthread* | *-lpthread*) ;;
*) die "pkg-config --libs --static tern has no threads: $slibs" ;;
esac

san=
[ "$sanitize" = none ] || [ -z "$sanitize" ] || san="-fsanitize=$sanitize"
# shellcheck disable=SC2086 # the flags are words
"$@" -std=c11 -Wall -Wextra -Wno-unused-parameter -Werror $san -o "$tmp/pc_consumer" "$src/tests/install/pc_consumer.c" \
	$flags || die "pc_consumer.c did not build against the installed tree"
LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$tmp/pc_consumer" ||
	die "pc_consumer failed"
if [ -z "$static" ] && command -v ldd >/dev/null 2>&1; then
	LD_LIBRARY_PATH="$libdir" ldd "$tmp/pc_consumer" | grep 'libtern' | grep -q "$tmp/root" ||
		die "pc_consumer did not load the installed libtern: $(LD_LIBRARY_PATH="$libdir" ldd "$tmp/pc_consumer" | grep libtern)"
fi
echo "install-test: OK"
