#!/bin/sh
# Build static, cmocka-free copies of the KVM dirty-log tests, for machines
# without /dev/kvm: run them inside a QEMU/TCG VM that has one with
#   scripts/kvm-in-qemu/run.sh OUTDIR/test_kvm_log
# tests/kvm/standalone/cmocka.h stands in for libcmocka (Debian has no
# libcmocka.a). Usage: tests/kvm/build-static.sh [OUTDIR] (default: .)
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-.}
CC=${CC:-cc}
CFLAGS="-std=gnu11 -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -D_GNU_SOURCE -pthread"
INC="-I$SRC/tests/kvm/standalone -I$SRC/include -I$SRC"
COMMON="$SRC/kvm/kvm_log.c $SRC/tests/kvm/kvm_test_stubs.c $SRC/util/error.c $SRC/util/log.c $SRC/util/bitmap.c $SRC/util/misc.c"
$CC $CFLAGS $INC -static -o "$OUT/test_kvm_log" "$SRC/tests/kvm/test_kvm_log.c" "$SRC/vm/kvm_guest.c" $COMMON
$CC $CFLAGS $INC -static -o "$OUT/test_kvm_validate" "$SRC/tests/kvm/test_kvm_validate.c" $COMMON
echo "built $OUT/test_kvm_log $OUT/test_kvm_validate"
