#!/usr/bin/env bash
# Install what building and testing tern needs, when it is missing
# (Debian 12, as root). Quiet when everything is there already.
set -euo pipefail

pkgs=(meson ninja-build pkg-config gcc clang clang-format libclang-rt-14-dev git zlib1g-dev libzstd-dev
      libjson-c-dev libibverbs-dev librdmacm-dev libcmocka-dev python3
      # suite rdma: its providers on a host with RDMA, else scripts/rdma-in-qemu/
      # (the VM; siw.ko is compiled there from apt-get downloaded kernel sources)
      ibverbs-providers iproute2 qemu-system-x86 busybox-static cpio make xz-utils)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}"
	if [ "$(id -u)" != 0 ]; then
		echo "deps: run as root (apt-get) or install: ${missing[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
