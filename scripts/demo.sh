#!/usr/bin/env bash
# The main job (until the KVM guest of the next milestone): build, then
# migrate 1 GiB of random memory between two processes over loopback with
# 2 worker channels, verify-ram on, and print both sides' figures as JSON.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build
exec build/examples/tern-loopback --ram 1G --channels 2 --transport tcp --verify "$@"
