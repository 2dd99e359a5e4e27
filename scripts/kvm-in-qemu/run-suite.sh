#!/usr/bin/env bash
# Run the real-KVM test suites of a build directory inside ONE QEMU/TCG VM
# that has a working /dev/kvm (see README.md), for machines without one.
#
#   scripts/kvm-in-qemu/run-suite.sh BUILD_DIR [case ...]
#
# The binaries run as they were built (dynamically linked): each one, the
# build's libtern.so*, every library `ldd` lists and the dynamic loader are
# copied into the guest at the same absolute paths, so RUNPATHs resolve.
#
# Cases (default: all but tern-bench), named as in meson:
#   kvm-validate kvm-log
#   kvm-migrate-{tcp,unix}-ch{1,4} kvm-dest-ram-mismatch kvm-dest-killed
#   kvm-cancel-{setup,active,device}
#   tern-bench          tern-bench $KVMQ_BENCH_ARGS (not in the default set)
#
# Env (besides run.sh's KVMQ_*; KVMQ_MEM defaults to 3G, KVMQ_SMP to 2,
# KVMQ_TIMEOUT to 3600):
#   TERN_KVM_TEST_RAM            guest RAM of the e2e cases (default here 64M;
#                                e2e_kvm's own default is 512M)
#   TERN_KVM_TEST_TIMEOUT_SCALE  multiplies e2e_kvm's deadlines (default here 2)
#   KVMQ_CASE_TIMEOUT            seconds before one case is killed (default 900)
#   KVMQ_BENCH_ARGS              (default: --ram 128M --dirty-rate 20M --dirty-ws 16M --reps 3)
#
# Prints the guest console; one line per case:
#   KVMQ-CASE <name> rc=<exit code> seconds=<wall time in the guest>
# and a summary. Exit status 0 iff every case passed (a SKIP, 77, counts as a
# failure here: the point of the VM is that /dev/kvm exists).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || {
	sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}
B=$(cd "$1" && pwd)
shift

ALL_CASES="kvm-validate kvm-log
kvm-migrate-tcp-ch1 kvm-migrate-tcp-ch4 kvm-migrate-unix-ch1 kvm-migrate-unix-ch4
kvm-dest-ram-mismatch kvm-dest-killed kvm-cancel-setup kvm-cancel-active kvm-cancel-device"
if [ $# -gt 0 ]; then CASES="$*"; else CASES=$(echo $ALL_CASES); fi

VM=$B/vm/tern-vm
BENCH=$B/bench/tern-bench
E2E=$B/tests/e2e_kvm/e2e_kvm
# What each case runs: "binary args..." (absolute paths, as meson passes them).
case_cmd() {
	local e2e="$E2E --vm $VM --bench $BENCH"
	case "$1" in
	kvm-validate) echo "$B/tests/kvm/test_kvm_validate" ;;
	kvm-log) echo "$B/tests/kvm/test_kvm_log" ;;
	kvm-migrate-tcp-ch1) echo "$e2e migrate tcp 1" ;;
	kvm-migrate-tcp-ch4) echo "$e2e migrate tcp 4" ;;
	kvm-migrate-unix-ch1) echo "$e2e migrate unix 1" ;;
	kvm-migrate-unix-ch4) echo "$e2e migrate unix 4" ;;
	kvm-dest-ram-mismatch) echo "$e2e ram-mismatch" ;;
	kvm-dest-killed) echo "$e2e dest-killed" ;;
	kvm-cancel-setup | kvm-cancel-active | kvm-cancel-device) echo "$e2e cancel ${1#kvm-cancel-}" ;;
	tern-bench) echo "$BENCH --vm $VM ${KVMQ_BENCH_ARGS:---ram 128M --dirty-rate 20M --dirty-ws 16M --reps 3}" ;;
	*) return 1 ;;
	esac
}

bins=()
for c in $CASES; do
	cmd=$(case_cmd "$c") || { echo "run-suite: unknown case '$c'" >&2; exit 2; }
	bins+=("${cmd%% *}")
	case "$cmd" in *" --vm "*) bins+=("$VM") ;; esac
	case "$cmd" in *" --bench "*) bins+=("$BENCH") ;; esac
done
for f in "${bins[@]}"; do
	[ -x "$f" ] || { echo "run-suite: $f missing: build it first (ninja -C $B)" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/kvmq-suite.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
T=$WORK/tree
mkdir -p "$T"

# copy PATH to the same absolute path in the tree, following symlinks
put() {
	mkdir -p "$T$(dirname "$1")"
	cp -L "$1" "$T$1"
}
# the binaries, libtern with its symlinks, and what ldd says they need
libs=$(find "$B" -maxdepth 1 -name 'libtern.so*' ! -type d)
for f in $(printf '%s\n' "${bins[@]}" $libs | sort -u); do
	put "$f"
	# lines "name => /path (addr)" and "/lib64/ld-linux-x86-64.so.2 (addr)"
	for l in $(ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
		[ -e "$T$l" ] || put "$l"
	done
done

# The script /init runs. busybox sh; each case's output goes to the console.
{
	cat <<'EOF'
#!/bin/sh
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
EOF
	printf 'export TERN_KVM_TEST_RAM=%s TERN_KVM_TEST_TIMEOUT_SCALE=%s\n' \
		"${TERN_KVM_TEST_RAM:-64M}" "${TERN_KVM_TEST_TIMEOUT_SCALE:-2}"
	printf 'CASE_TIMEOUT=%s\n' "${KVMQ_CASE_TIMEOUT:-900}"
	cat <<'EOF'
echo "KVMQ-SUITE cpus=$(nproc) mem=$(awk '/MemTotal/{print $2 " kB"}' /proc/meminfo) ram=$TERN_KVM_TEST_RAM"
failed=0
up() { cut -d' ' -f1 /proc/uptime; }
run_case() { # name cmd...
	name=$1; shift
	echo "KVMQ-START $name: $*"
	t0=$(up)
	cd /tmp
	timeout -s KILL "$CASE_TIMEOUT" "$@"
	rc=$?
	t1=$(up)
	echo "KVMQ-CASE $name rc=$rc seconds=$(awk "BEGIN{printf \"%.1f\", $t1 - $t0}")"
	[ $rc -eq 0 ] || failed=$((failed + 1))
}
EOF
	for c in $CASES; do
		printf 'run_case %s %s\n' "$c" "$(case_cmd "$c")"
	done
	cat <<'EOF'
echo "KVMQ-SUITE failed=$failed"
[ $failed -eq 0 ]
EOF
} >"$WORK/run-test"
chmod +x "$WORK/run-test"

t0=$(date +%s)
set +e
KVMQ_TREE=$T KVMQ_MEM=${KVMQ_MEM:-3G} KVMQ_SMP=${KVMQ_SMP:-2} KVMQ_TIMEOUT=${KVMQ_TIMEOUT:-3600} \
	"$HERE/run.sh" "$WORK/run-test" | tee "$WORK/console.log"
rc=${PIPESTATUS[0]}
set -e
echo "==== run-suite: $(grep -c '^KVMQ-CASE ' "$WORK/console.log" || true) case(s), wall $(($(date +%s) - t0)) s, exit $rc"
grep '^KVMQ-CASE ' "$WORK/console.log" || true
for c in $CASES; do
	grep -q "^KVMQ-CASE $c " "$WORK/console.log" || { echo "KVMQ-CASE $c rc=none (never finished)"; [ $rc -ne 0 ] || rc=125; }
done
exit "$rc"
