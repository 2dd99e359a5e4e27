#!/usr/bin/env bash
# Print "DEVICE ADDRESS" for the first RDMA device of this host whose netdev
# has an address that rdma_cm can use (global scope, IPv4 first), and exit 0;
# exit 1 when there is none (no /sys/class/infiniband, no address, no netdev).
# scripts/test.sh then runs suite rdma here instead of in the VM.
#
#   scripts/rdma-in-qemu/host-device.sh          e.g. "mlx5_0 192.168.10.2"
set -euo pipefail
ls /sys/class/infiniband/* >/dev/null 2>&1 || exit 1

# device netdev pairs: `rdma link` knows every kind (RoCE, iWARP, soft devices);
# sysfs has the netdevs of a device's GIDs (RoCE) and of its PCI function (IPoIB)
pairs() {
	rdma link show 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "netdev") {
		sub(/\/.*/, "", $2); print $2, $(i + 1) }}'
	for d in /sys/class/infiniband/*; do
		for n in $(cat "$d"/ports/*/gid_attrs/ndevs/* 2>/dev/null | sort -u) \
			$(ls "$d/device/net" 2>/dev/null); do
			echo "${d##*/} $n"
		done
	done
}
while read -r dev netdev; do
	for fam in -4 -6; do
		addr=$(ip "$fam" -o addr show dev "$netdev" scope global 2>/dev/null |
			awk '{sub(/\/.*/, "", $4); print $4; exit}')
		if [ -n "$addr" ]; then
			echo "$dev $addr"
			exit 0
		fi
	done
done < <(pairs | awk '!seen[$0]++')
exit 1
