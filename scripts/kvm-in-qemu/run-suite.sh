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
#   kvm-validate kvm-guest kvm-log
#   kvm-migrate-{tcp,unix}-ch{1,4} kvm-dest-ram-mismatch kvm-dest-killed
#   kvm-migrate-tcp-ch{1,4}-{zlib,zstd,xbzrle,auto} kvm-xbzrle-hits
#   kvm-cancel-{setup,active,device}
#   kvm-timeout-cancel kvm-auto-converge kvm-pause-before-switchover
#   kvm-standby-migrate-again
#   tern-bench          tern-bench $KVMQ_BENCH_ARGS (not in the default set)
#
# Env (besides run.sh's KVMQ_*; KVMQ_MEM defaults to 3G, KVMQ_SMP to 1,
# KVMQ_TIMEOUT to 3600). KVMQ_SMP=2 is faster with big guests (512M: 71 s
# instead of 106 s) but QEMU 7.2's multi-threaded TCG wedged the guest kernel
# twice in ~200 cases (both vCPUs looping in the int3 handler, as while the
# kernel live-patches its text with int3 + IPIs: KVM flips a static key when
# the first vCPU without an in-kernel APIC is created) and once the nested guest
# triple-faulted; 1 vCPU had neither in the same number of runs.
#   TERN_KVM_TEST_RAM            guest RAM of the e2e cases (default here 64M;
#                                e2e_kvm's own default is 512M)
#   TERN_KVM_TEST_TIMEOUT_SCALE  multiplies e2e_kvm's deadlines (default here 2)
#   KVMQ_CASE_TIMEOUT            seconds before one case is killed (default 900)
#   KVMQ_HANG_DUMP               seconds after which a case still running gets every
#                                process's threads, states and kernel stacks (and, with
#                                KVMQ_GDB=1, their user stacks) dumped (default 120)
#   KVMQ_GDB=1                   put gdb (and the Python it embeds) into the guest too
#   KVMQ_TRACE=EVENTS            trace these kvm events in the guest kernel (e.g.
#                                "kvm_exit kvm_page_fault"); a failed case prints the last
#                                KVMQ_TRACE_LINES (300) lines of the trace
#   KVMQ_STALL                   seconds of console silence after which the guest counts
#                                as hung: its vCPUs' registers are printed from the QEMU
#                                monitor and QEMU is stopped (default 360). The guest boots
#                                with nokaslr, so kernel RIPs resolve with the System.map of
#                                Debian's linux-image-*-dbg package.
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

ALL_CASES="kvm-validate kvm-guest kvm-log
kvm-migrate-tcp-ch1 kvm-migrate-tcp-ch4 kvm-migrate-unix-ch1 kvm-migrate-unix-ch4
kvm-dest-ram-mismatch kvm-dest-killed kvm-cancel-setup kvm-cancel-active kvm-cancel-device
kvm-migrate-tcp-ch1-zlib kvm-migrate-tcp-ch4-zlib kvm-migrate-tcp-ch1-zstd kvm-migrate-tcp-ch4-zstd
kvm-migrate-tcp-ch1-xbzrle kvm-migrate-tcp-ch4-xbzrle kvm-migrate-tcp-ch1-auto kvm-migrate-tcp-ch4-auto
kvm-xbzrle-hits kvm-timeout-cancel kvm-auto-converge kvm-pause-before-switchover
kvm-standby-migrate-again"
if [ $# -gt 0 ]; then CASES="$*"; else CASES=$(tr '\n' ' ' <<<"$ALL_CASES"); fi

VM=$B/vm/tern-vm
BENCH=$B/bench/tern-bench
E2E=$B/tests/e2e_kvm/e2e_kvm
# What each case runs: "binary args..." (absolute paths, as meson passes them).
case_cmd() {
	local e2e="$E2E --vm $VM --bench $BENCH"
	case "$1" in
	kvm-validate) echo "$B/tests/kvm/test_kvm_validate" ;;
	kvm-guest) echo "$B/tests/kvm/test_kvm_guest" ;;
	kvm-log) echo "$B/tests/kvm/test_kvm_log" ;;
	kvm-migrate-tcp-ch1) echo "$e2e migrate tcp 1" ;;
	kvm-migrate-tcp-ch4) echo "$e2e migrate tcp 4" ;;
	kvm-migrate-unix-ch1) echo "$e2e migrate unix 1" ;;
	kvm-migrate-unix-ch4) echo "$e2e migrate unix 4" ;;
	kvm-migrate-tcp-ch[14]-*) c=${1#kvm-migrate-tcp-ch} && echo "$e2e migrate tcp ${c%%-*} ${c#*-}" ;;
	kvm-xbzrle-hits) echo "$e2e xbzrle-hits" ;;
	kvm-standby-migrate-again) echo "$B/tests/e2e_kvm/e2e_kvm_standby --vm $VM" ;;
	kvm-timeout-cancel | kvm-auto-converge | kvm-pause-before-switchover) echo "$e2e ${1#kvm-}" ;;
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
tools=()
if [ "${KVMQ_GDB:-0}" = 1 ]; then
	tools+=("$(command -v gdb)")
	[ -n "${tools[0]}" ] || { echo "run-suite: KVMQ_GDB=1 but no gdb here" >&2; exit 2; }
fi

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
for f in $(printf '%s\n' "${bins[@]}" "${tools[@]}" $libs | sort -u); do
	put "$f"
	# lines "name => /path (addr)" and "/lib64/ld-linux-x86-64.so.2 (addr)"
	for l in $(ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
		[ -e "$T$l" ] || put "$l"
	done
done
if [ ${#tools[@]} -gt 0 ]; then
	# gdb embeds Python, which will not start without its standard library
	py=$(ldd "${tools[0]}" | sed -n 's/.*\(libpython3\.[0-9]*\).*/\1/p' | head -1)
	py=${py#lib}
	[ -z "$py" ] || { mkdir -p "$T/usr/lib" && cp -a "/usr/lib/$py" "$T/usr/lib/"; }
	# its own Python modules, and the library it reads threads through
	[ ! -d /usr/share/gdb ] || { mkdir -p "$T/usr/share" && cp -a /usr/share/gdb "$T/usr/share/"; }
	for l in /lib/x86_64-linux-gnu/libthread_db.so*; do [ -e "$l" ] && put "$l"; done
fi

# The script /init runs. busybox sh; each case's output goes to the console.
{
	cat <<'EOF'
#!/bin/sh
export PATH=$PATH:/usr/bin
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
EOF
	printf 'export TERN_KVM_TEST_RAM=%s TERN_KVM_TEST_TIMEOUT_SCALE=%s\n' \
		"${TERN_KVM_TEST_RAM:-64M}" "${TERN_KVM_TEST_TIMEOUT_SCALE:-2}"
	printf 'CASE_TIMEOUT=%s HANG=%s\n' "${KVMQ_CASE_TIMEOUT:-900}" "${KVMQ_HANG_DUMP:-120}"
	printf 'TRACE="%s" TRACE_LINES=%s\n' "${KVMQ_TRACE:-}" "${KVMQ_TRACE_LINES:-300}"
	cat <<'EOF'
echo "KVMQ-SUITE cpus=$(nproc) mem=$(awk '/MemTotal/{print $2 " kB"}' /proc/meminfo) ram=$TERN_KVM_TEST_RAM"
failed=0
up() { cut -d' ' -f1 /proc/uptime; }
# A case that hangs: show what every process and thread is doing, in the kernel and,
# when gdb is here, in user space.
hang_dump() {
	echo "KVMQ-HANG $1: still running at uptime $(up)"
	for d in /proc/[0-9]*; do
		c=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null | cut -c1-160)
		[ -n "$c" ] || continue # kernel threads
		case "$c" in /bin/sh*|sleep*|timeout*|-sh*) continue ;; esac
		echo "== pid ${d#/proc/}: $c"
		for t in "$d"/task/*; do
			echo "  tid ${t##*/} $(grep -E '^(Name|State)' "$t/status" | tr '\n\t' '  ') wchan=$(cat "$t/wchan" 2>/dev/null)"
			sed 's/^/      /' "$t/stack" 2>/dev/null
		done
		command -v gdb >/dev/null &&
			gdb -nx -batch -p "${d#/proc/}" -ex 'thread apply all bt' 2>&1 | grep -vE '^\[New LWP|^$'
	done
	echo "KVMQ-HANG end"
}
TR=/sys/kernel/tracing
if [ -n "$TRACE" ]; then
	mount -t tracefs nodev $TR
	echo 8192 >$TR/buffer_size_kb
	for e in $TRACE; do echo 1 >$TR/events/kvm/$e/enable || echo "KVMQ: no event kvm/$e"; done
fi
run_case() { # name cmd...
	name=$1; shift
	echo "KVMQ-START $name: $*"
	[ -z "$TRACE" ] || echo >$TR/trace
	t0=$(up)
	cd /tmp
	timeout -s KILL "$CASE_TIMEOUT" "$@" &
	cpid=$!
	(sleep "$HANG" && hang_dump "$name") &
	wpid=$!
	wait $cpid
	rc=$?
	kill $wpid 2>/dev/null
	t1=$(up)
	echo "KVMQ-CASE $name rc=$rc seconds=$(awk "BEGIN{printf \"%.1f\", $t1 - $t0}")"
	[ $rc -eq 0 ] || failed=$((failed + 1))
	if [ $rc -ne 0 ] && [ -n "$TRACE" ]; then
		echo "KVMQ-TRACE $name: last $TRACE_LINES lines"
		grep -v '^#' $TR/trace | tail -n "$TRACE_LINES"
		echo "KVMQ-TRACE end"
	fi
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

# A guest whose console stays silent that long is hung below the tests (the in-guest
# KVMQ_HANG_DUMP would have spoken): show where its vCPUs are, then stop it.
MON=$WORK/monitor.sock
stall_watch() {
	local last=0 size now quiet
	quiet=$(date +%s)
	while sleep 10; do
		size=$(stat -c %s "$WORK/console.log" 2>/dev/null || echo 0)
		now=$(date +%s)
		if [ "$size" != "$last" ]; then last=$size quiet=$now; continue; fi
		[ $((now - quiet)) -ge "${KVMQ_STALL:-360}" ] || continue
		echo "KVMQ-STALL: no console output for ${KVMQ_STALL:-360} s: vCPU state, then quit"
		python3 - "$MON" <<'PY'
import re, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
def cmd(c):
    try: s.sendall((c + "\n").encode())
    except OSError: return ""  # QEMU is gone already
    time.sleep(2); out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d: break
            out += d
    except OSError: pass
    return out.decode(errors="replace")
cmd("")
regs = cmd("info registers -a")
for cpu, rip in re.findall(r"(?s)CPU#(\d+).*?RIP=([0-9a-f]+)", regs):
    print("KVMQ-STALL CPU#%s RIP=%s (%s)" % (cpu, rip, "kernel" if rip.startswith("ffff") else "user"))
print(regs)
cmd("quit")
PY
		return
	done
}
t0=$(date +%s)
: >"$WORK/console.log"
stall_watch &
wpid=$!
set +e
KVMQ_TREE=$T KVMQ_MEM=${KVMQ_MEM:-3G} KVMQ_SMP=${KVMQ_SMP:-1} KVMQ_TIMEOUT=${KVMQ_TIMEOUT:-3600} \
	KVMQ_MONITOR=$MON KVMQ_APPEND="nokaslr ${KVMQ_APPEND:-}" \
	"$HERE/run.sh" "$WORK/run-test" | tee "$WORK/console.log"
rc=${PIPESTATUS[0]}
set -e
kill $wpid 2>/dev/null || true
wait $wpid 2>/dev/null || true
echo "==== run-suite: $(grep -c '^KVMQ-CASE ' "$WORK/console.log" || true) case(s), wall $(($(date +%s) - t0)) s, exit $rc"
grep '^KVMQ-CASE ' "$WORK/console.log" || true
for c in $CASES; do
	grep -q "^KVMQ-CASE $c " "$WORK/console.log" || { echo "KVMQ-CASE $c rc=none (never finished)"; [ "$rc" -ne 0 ] || rc=125; }
done
exit "$rc"
