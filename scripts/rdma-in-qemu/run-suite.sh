#!/usr/bin/env bash
# Run meson suite "rdma" of a build directory on soft RDMA devices (rxe0 and
# siw0) inside ONE QEMU/TCG VM, for machines whose kernel has no RDMA.
#
#   scripts/rdma-in-qemu/run-suite.sh BUILD_DIR [test ...]
#
# The cases are meson's own: `meson introspect --tests BUILD_DIR` gives each
# test of suite rdma (or each one named) with its command, arguments, env and
# timeout. Each runs once per device, with
#   TERN_RDMA_DEV=rxe0 TERN_RDMA_ADDR=10.77.1.1 TERN_RDMA_ADDR6=fd77:1::1
#                                                  (rxe on a dummy netdev)
#   TERN_RDMA_DEV=siw0 TERN_RDMA_ADDR=10.77.2.1 TERN_RDMA_ADDR6=fd77:2::1
#                                                  (siw on another one)
# as root, with RLIMIT_MEMLOCK unlimited, its working directory the build dir.
# The binaries run as they were built (dynamically linked): each file a case
# names, the build's libtern.so* and programs (tern-vm, tern-bench,
# tern-loopback, ternctl), every library `ldd` lists and the loader are copied
# into the guest at the same absolute paths, so RUNPATHs resolve; so are the
# host's rxe and siw providers that libibverbs dlopen()s.
#
# Env:
#   RDMAQ_DIR            appliance (default /tmp/rdmaq/appliance; built or
#                        refreshed by build-appliance.sh first, ~40 s from nothing)
#   RDMAQ_DEVS           devices to run on (default "rxe0 siw0")
#   RDMAQ_MEM            guest RAM (default 2G)
#   RDMAQ_CPU            QEMU -cpu model (default qemu64 with SSE4.2 and PCLMUL,
#                        no AVX: see below)
#   RDMAQ_SMP            vCPUs (default 2: with 1, peers that poll wait a
#                        scheduler tick, ~4 ms, per exchange)
#   RDMAQ_TIMEOUT_SCALE  multiplies meson's per-test timeouts (default 2: TCG)
#   RDMAQ_TIMEOUT        seconds for the whole VM (default: the sum of the cases'
#                        timeouts plus 120)
#   RDMAQ_STALL          seconds of console silence after which the guest counts as
#                        stuck and QEMU is stopped (default: the longest case's
#                        timeout plus 120)
#   RDMAQ_FILES          more host files to copy in (same paths, with their libraries)
#   RDMAQ_GDB=1          put gdb (and the Python it embeds) into the guest: a timed-out
#                        case's dump then has every thread's user-space backtrace
#   RDMAQ_RUN            "COMMAND ARGS": run that instead of the suite, once, on the
#                        first device (benchmarks: scripts/rdma-in-qemu/bench-transports.sh)
#   RDMAQ_APPEND         extra kernel cmdline ("rdmaq.dmesg" prints dmesg after setup)
#
# Prints the guest console; per case
#   RDMAQ-CASE <name> dev=<rxe0|siw0> rc=<exit code> seconds=<wall time in the guest>
# then a summary. A case that outlives its timeout gets its output so far,
# then every process's threads with their states and kernel stacks (and user
# stacks with RDMAQ_GDB=1), the queue pairs and rdma_cm ids printed
# (RDMAQ-TIMEOUT ... RDMAQ-DUMP end), and is killed with its process group.
# Exit status: 0 iff every case passed. A skip (77) is a failure, since the
# device is there, unless the same case passed on another device: a case may
# skip itself on one device (e.g. siw has no WRITE_WITH_IMM), for the reason
# it prints last (shown as RDMAQ-SKIP). 125: no result (the appliance could
# not be built or the guest did not boot); 1 when the VM died or timed out
# mid-suite (the case that was running is named).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || {
	sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}
B=$(cd "$1" && pwd)
shift
DIR=${RDMAQ_DIR:-/tmp/rdmaq/appliance}
DEVS=${RDMAQ_DEVS:-rxe0 siw0}

WORK=$(mktemp -d /tmp/rdmaq-suite.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
meson introspect --tests "$B" >"$WORK/tests.json"
read -r total longest < <(python3 "$HERE/plan.py" "$WORK/tests.json" "$B" "$DEVS" \
	"${RDMAQ_TIMEOUT_SCALE:-2}" "$WORK/cases" "$WORK/files" "$@" || echo fail)
[ "$total" != fail ] || exit 2
# RDMAQ_RUN="COMMAND ARGS": run that one command instead (a benchmark, say),
# once, on the first device, as case "run" with its environment
if [ -n "${RDMAQ_RUN:-}" ]; then
	read -r -a run <<<"$RDMAQ_RUN"
	dev0=${DEVS%% *}
	case $dev0 in rxe0) a0=10.77.1.1 ;; *) a0=10.77.2.1 ;; esac
	total=${RDMAQ_RUN_TIMEOUT:-1800}
	longest=$total
	printf 'run_case run %s %s %s %q env' "$dev0" "$a0" "$total" "$B" >"$WORK/cases"
	printf ' %q' "${run[@]}" >>"$WORK/cases"
	echo >>"$WORK/cases"
	[ -f "${run[0]}" ] && echo "$(realpath "${run[0]}")" >"$WORK/files"
fi
VM_TIMEOUT=${RDMAQ_TIMEOUT:-$((total + 120))}
# the guest speaks at least when a case ends or times out: silence for longer
# than the longest case means the guest itself is stuck
STALL=${RDMAQ_STALL:-$((longest + 120))}

# The appliance not being buildable here (packages, network) says nothing about
# the code under test: no result.
"$HERE/build-appliance.sh" "$DIR" >&2 || {
	echo "rdma-in-qemu: building the appliance in $DIR failed" >&2
	exit 125
}

T=$WORK/tree
mkdir -p "$T"
# copy PATH to the same absolute path in the tree, following symlinks
put() {
	[ -e "$T$1" ] && return 0
	mkdir -p "$T$(dirname "$1")"
	cp -L "$1" "$T$1"
}
# a file with what it needs to run: ldd's libraries, or a script's interpreter
put_with_deps() {
	local f=$1 interp arg
	put "$f"
	if head -c4 "$f" | grep -q ELF; then
		# lines "name => /path (addr)" and "/lib64/ld-linux-x86-64.so.2 (addr)"
		for l in $(ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
			put "$l"
		done
	elif [ "$(head -c2 "$f")" = '#!' ]; then
		read -r interp arg _ < <(head -1 "$f" | cut -c3-)
		case "$interp" in
		/bin/sh) ;; # busybox's
		/usr/bin/env) [ -z "$arg" ] || put_with_deps "$(command -v "$arg")" ;;
		*) put_with_deps "$interp" ;;
		esac
	fi
}
MA=x86_64-linux-gnu
ship=$(cat "$WORK/files")
ship+=" $(find "$B" -maxdepth 1 -name 'libtern.so*' ! -type d | tr '\n' ' ')"
for p in vm/tern-vm bench/tern-bench examples/tern-loopback cli/ternctl; do
	[ -x "$B/$p" ] && ship+=" $B/$p"
done
# GNU date before busybox's in PATH: test scripts time things with +%s%N
ship+=" $(command -v date)"
# the host's providers match the host's libibverbs that the binaries bring
ship+=" $(ls /usr/lib/$MA/libibverbs/lib{rxe,siw}-rdmav*.so 2>/dev/null | tr '\n' ' ')"
if [ "${RDMAQ_GDB:-0}" = 1 ]; then
	gdb=$(command -v gdb) || { echo "run-suite: RDMAQ_GDB=1 but no gdb here" >&2; exit 2; }
	ship+=" $gdb $(ls /lib/$MA/libthread_db.so* 2>/dev/null | tr '\n' ' ')"
	# gdb embeds Python, which will not start without its standard library
	py=$(ldd "$gdb" | sed -n 's/.*lib\(python3\.[0-9]*\)\.so.*/\1/p' | head -1)
	for d in ${py:+/usr/lib/$py} /usr/share/gdb; do
		[ -d "$d" ] && mkdir -p "$T$(dirname "$d")" && cp -a "$d" "$T$(dirname "$d")/"
	done
fi
# (at the path given: /usr/bin/sh stays /usr/bin/sh, a copy of what it links to)
for f in $ship ${RDMAQ_FILES:-}; do put_with_deps "$(realpath -s "$f")"; done
mkdir -p "$T$B"

# /run-test, run by /init (busybox sh); a case's output is printed when it ends
{
	cat <<'EOF'
#!/bin/sh
up() { cut -d' ' -f1 /proc/uptime; }
pgrp() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f3; }
# the threads of every process but the harness's own: name, state, wait
# channel, kernel stack
dump_threads() {
	mine=$(pgrp $$)
	for d in /proc/[0-9]*; do
		c=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null | cut -c1-200)
		[ -n "$c" ] || continue # kernel threads
		[ "$(pgrp ${d#/proc/})" != "$mine" ] && [ "${d#/proc/}" != 1 ] || continue
		echo "== pid ${d#/proc/}: $c"
		for t in "$d"/task/*; do
			echo "  tid ${t##*/} $(grep -E '^(Name|State)' "$t/status" | tr '\n\t' '  ') wchan=$(cat "$t/wchan" 2>/dev/null)"
			sed 's/^/      /' "$t/stack" 2>/dev/null
		done
		command -v gdb >/dev/null &&
			gdb -nx -batch -p "${d#/proc/}" -ex 'thread apply all bt' 2>&1 | grep -vE '^\[New LWP|^$'
	done
	echo "RDMAQ-DUMP queue pairs and rdma_cm ids:"
	rdma resource show qp
	rdma resource show cm_id
}
OUT=/tmp/rdmaq-case.out
run_case() { # name dev addr timeout workdir cmd...
	name=$1 dev=$2 addr=$3 tmo=$4 wd=$5
	shift 5
	echo "RDMAQ-START $name dev=$dev timeout=${tmo}s: $*"
	t0=$(up)
	rm -f /tmp/rdmaq-timed-out
	if grep -q ACTIVE /sys/class/infiniband/$dev/ports/1/state 2>/dev/null; then
		cd "$wd"
		# its own process group, so that a timeout kills what it started too
		# the IPv6 address init gave the same netdev: fd77:<n>::1 for 10.77.<n>.1
		a6=fd77:$(echo "$addr" | cut -d. -f3)::1
		TERN_RDMA_ADDR=$addr TERN_RDMA_ADDR6=$a6 TERN_RDMA_DEV=$dev setsid "$@" >$OUT 2>&1 </dev/null &
		cpid=$!
		(
			sleep "$tmo"
			touch /tmp/rdmaq-timed-out
			echo "RDMAQ-TIMEOUT $name dev=$dev: still running after $tmo s; its output so far:"
			cat $OUT
			echo "RDMAQ-DUMP threads at uptime $(up):"
			dump_threads
			echo "RDMAQ-DUMP end"
			kill -KILL -$cpid
		) &
		wpid=$!
		wait $cpid
		rc=$?
		kill $wpid 2>/dev/null
		kill -KILL -$cpid 2>/dev/null # whatever it left behind
		cd /tmp
		[ -f /tmp/rdmaq-timed-out ] || cat $OUT
	else
		echo "RDMAQ: $dev is not ACTIVE: $(cat /sys/class/infiniband/$dev/ports/1/state 2>&1)"
		rc=125
	fi
	s=$(awk "BEGIN{printf \"%.1f\", $(up) - $t0}")
	if [ -f /tmp/rdmaq-timed-out ]; then
		echo "RDMAQ-CASE $name dev=$dev rc=$rc seconds=$s timed-out"
	else
		echo "RDMAQ-CASE $name dev=$dev rc=$rc seconds=$s"
	fi
	[ $rc -ne 77 ] || echo "RDMAQ-SKIP $name dev=$dev: $(grep . $OUT | tail -1)"
}
EOF
	cat "$WORK/cases"
	echo 'echo "RDMAQ-DONE"'
} >"$T/run-test"
chmod +x "$T/run-test"
# The kernel unpacks concatenated cpio archives in order: the appliance, then ours.
(cd "$T" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/test.cpio.gz"
cat "$DIR/base.cpio.gz" "$WORK/test.cpio.gz" >"$WORK/initrd"

# Not -cpu max: with AVX/AVX2 advertised, glibc and zlib take paths that TCG
# runs several times slower (migrate-tcp-ch1-zlib: 121 s and a timeout with
# max, 34-36 s with this; plain migrations 2-3x faster too)
CPU=${RDMAQ_CPU:-qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+pclmulqdq}
BIOS=()
[ -f /usr/share/qemu/qboot.rom ] && BIOS=(-bios /usr/share/qemu/qboot.rom) # faster than SeaBIOS
# A guest whose console stays silent for $STALL s is hung below the tests
# (a case's own timeout would have spoken): stop QEMU.
stall_watch() {
	local last=-1 size quiet now
	quiet=$(date +%s)
	while sleep 5; do
		size=$(stat -c %s "$WORK/console.log" 2>/dev/null || echo 0)
		now=$(date +%s)
		if [ "$size" != "$last" ]; then last=$size quiet=$now; continue; fi
		[ $((now - quiet)) -ge "$STALL" ] || continue
		echo "RDMAQ-STALL: no console output for $STALL s: the guest is stuck; stopping QEMU"
		kill "$(cat "$WORK/qemu.pid")" 2>/dev/null
		return
	done
}
t0=$(date +%s)
: >"$WORK/console.log"
stall_watch &
wpid=$!
set +e
timeout --foreground -k 5 "$VM_TIMEOUT" \
	qemu-system-x86_64 "${BIOS[@]}" -pidfile "$WORK/qemu.pid" -accel tcg -cpu "$CPU" -m "${RDMAQ_MEM:-2G}" \
	-smp "${RDMAQ_SMP:-2}" -nodefaults -no-user-config -display none -serial stdio -no-reboot \
	-kernel "$DIR/vmlinux" -initrd "$WORK/initrd" \
	-append "console=ttyS0 quiet loglevel=3 panic=-1 ${RDMAQ_APPEND:-}" </dev/null |
	sed -u 's/\r$//' | tee "$WORK/console.log"
qrc=${PIPESTATUS[0]}
set -e
kill $wpid 2>/dev/null || true
wait $wpid 2>/dev/null || true

# The verdict, from the console: every (case, device) must have passed, or
# skipped where the same case passed on another device.
echo "==== rdma-in-qemu: wall $(($(date +%s) - t0)) s, VM timeout ${VM_TIMEOUT} s, stall ${STALL} s, qemu exit $qrc"
if ! grep -q '^RDMAQ-READY' "$WORK/console.log"; then
	echo "RDMAQ-SUMMARY no result: the guest did not come up"
	exit 125
fi
awk -v want="$(awk '{print $2 "@" $3}' "$WORK/cases" | tr -d "'" | tr '\n' ' ')" '
	/^RDMAQ-START / { running = $0 }
	/^RDMAQ-SKIP / { skips = skips $0 "\n" }
	/^RDMAQ-CASE / {
		line = $0
		sub(/^dev=/, "", $3); sub(/^rc=/, "", $4)
		rc[$2 "@" $3] = $4; if ($4 == 0) passed[$2] = 1; running = ""
		print line
	}
	END {
		n = split(want, w, " ")
		for (i = 1; i <= n; i++) {
			split(w[i], nd, "@")
			if (!(w[i] in rc)) { print "RDMAQ-CASE " nd[1] " dev=" nd[2] " rc=none (never finished)"; fail++ }
			else if (rc[w[i]] == 0) pass++
			else if (rc[w[i]] == 77 && (nd[1] in passed)) skip++
			else fail++
		}
		printf "%s", skips
		if (running != "") print "RDMAQ: the VM ended while this was running: " running
		printf "RDMAQ-SUMMARY cases=%d passed=%d skipped=%d failed=%d\n", n, pass, skip, fail
		exit fail > 0
	}' "$WORK/console.log"
