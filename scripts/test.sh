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
