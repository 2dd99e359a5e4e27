#!/bin/sh
# rdma against tcp on the same (soft) RDMA host, interleaved: tern-loopback
# migrates RAM of random data (no writer, no verify) REPS times over each,
# and prints each side's JSON line, including the process's CPU time from
# the migration's start to its end (cpu_user_us, cpu_sys_us). Run inside the
# VM:
#   RDMAQ_DEVS=rxe0 RDMAQ_RUN="$PWD/scripts/rdma-in-qemu/bench-transports.sh \
#     $PWD/build 5 64M 2" scripts/rdma-in-qemu/run-suite.sh build
# Speeds there are TCG's; the CPU split between the sides is what to read.
set -u
b=$1
reps=${2:-5}
ram=${3:-64M}
ch=${4:-2}
i=1
while [ "$i" -le "$reps" ]; do
	for t in rdma tcp; do
		echo "BENCH transport=$t rep=$i"
		"$b/examples/tern-loopback" --transport "$t" --rdma-addr "$TERN_RDMA_ADDR" \
			--ram "$ram" --channels "$ch" -q 2>&1 | grep '^{'
	done
	i=$((i + 1))
done
exit 0
