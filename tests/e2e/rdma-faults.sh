#!/bin/sh
# Whole migrations over rdma: that go wrong (issue 11), between two
# tern-loopback processes on the RDMA device whose address is in
# $TERN_RDMA_ADDR ($TERN_RDMA_DEV names it: rxe0, siw0). Skips (77) without
# one; scripts/rdma-in-qemu/ runs it once on rxe and once on siw.
#
#   rdma-faults.sh TERN_LOOPBACK TERNCTL CASE
#
# dest-killed    the destination is SIGKILLed while pages flow: the source
#                ends `failed` with a message naming what broke, within
#                seconds (the kernel tears the dead process's queue pairs
#                down and rdma_cm tells the peer), and exits 1.
# source-killed  the source is SIGKILLed while pages flow: the destination
#                ends `failed`, never resumes a guest, and says why.
# stopped-dest   the destination is SIGSTOPped: its device still acks RDMA
#                WRITEs, but nobody reposts receives, so the source runs
#                out of credits; migration-timeout (5 s) must still end the
#                migration `cancelled` (a cancel while blocked in the
#                transport).
# memlock-source / memlock-dest  rdma-pin-all with RLIMIT_MEMLOCK at 4 MiB
#                on that side and 64 MiB of RAM: the migration fails and the
#                message says RLIMIT_MEMLOCK (on the destination's side the
#                source reports the destination's reason). rxe lets root
#                pin past the limit (CAP_IPC_LOCK); siw counts it even for
#                root: these cases skip on rxe.
# cancel-setup / cancel-active / cancel-pre-switchover
#                `ternctl cancel` on the source's management socket once its
#                status reads setup (the destination is SIGSTOPped, so the
#                rdma_cm connect waits for an accept), active (pages flow
#                over a slow link), or pre-switchover (pause-before-switchover
#                holds it there, every page placed). The source ends
#                `cancelled` within 5 s of the cancel (15 s in setup on siw:
#                see cancel_in) and exits 1; the
#                destination ends `failed` with a message, never completed.
set -u
lb=$1
ctl=$2
case_name=$3
if [ -z "${TERN_RDMA_ADDR:-}" ]; then
	echo "SKIP: needs TERN_RDMA_ADDR (an address on an RDMA device's netdev)"
	exit 77
fi
dev=${TERN_RDMA_DEV:-rdma}
addr=$TERN_RDMA_ADDR
case $addr in
*:*) listen="rdma:[$addr]:0" ;;
*) listen="rdma:$addr:0" ;;
esac
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-rdma-faults.XXXXXX") || exit 1
dst=""
src=""
cleanup() {
	for p in $dst $src; do
		kill -CONT "$p" 2>/dev/null
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

say() { echo "rdma-faults $case_name on $dev: $*"; }
fail() {
	say "FAIL: $*" >&2
	for f in src.out src.err dst.out dst.err; do
		[ -s "$tmp/$f" ] && { echo "--- $f" >&2; tail -n 20 "$tmp/$f" >&2; }
	done
	exit 1
}
field() { grep -o "\"$1\":\"[^\"]*\"" "$2" | head -n 1 | cut -d'"' -f4; }

# start_dest [ulimit-kib] [args...]: the destination, and its URI in $uri
start_dest() {
	lim=$1
	shift
	if [ "$lim" = "-" ]; then
		"$lb" --incoming "$listen" -q "$@" >"$tmp/dst.out" 2>"$tmp/dst.err" &
	else
		(ulimit -l "$lim" && exec "$lb" --incoming "$listen" -q "$@") \
			>"$tmp/dst.out" 2>"$tmp/dst.err" &
	fi
	dst=$!
	uri=""
	i=0
	while [ -z "$uri" ] && [ "$i" -lt 200 ]; do
		uri=$(grep -o 'listening on rdma:[^ ]*' "$tmp/dst.err" | head -n 1 | cut -d' ' -f3)
		[ -n "$uri" ] && break
		kill -0 "$dst" 2>/dev/null || fail "the destination exited before listening"
		sleep 0.1
		i=$((i + 1))
	done
	[ -n "$uri" ] || fail "the destination did not say where it listens"
}

# wait_pid PID SECONDS: wait for it, killing it after SECONDS; its status in $rc
wait_pid() {
	n=0
	while kill -0 "$1" 2>/dev/null && [ "$n" -lt "$(($2 * 10))" ]; do
		sleep 0.1
		n=$((n + 1))
	done
	if kill -0 "$1" 2>/dev/null; then
		kill -KILL "$1" 2>/dev/null
		wait "$1" 2>/dev/null
		rc=124
		return
	fi
	wait "$1"
	rc=$?
}

# cancel_in STATE: cancel the source ($src, socket $tmp/src.sock) once its
# status reads STATE, then check both ends
cancel_in() {
	n=0
	st=""
	while [ "$n" -lt 600 ]; do
		st=$("$ctl" -s "$tmp/src.sock" --json query 2>/dev/null |
			grep -o '"status":"[^"]*"' | head -n 1 | cut -d'"' -f4)
		[ "$st" = "$1" ] && break
		kill -0 "$src" 2>/dev/null || fail "the source ended before reaching $1"
		sleep 0.1
		n=$((n + 1))
	done
	[ "$st" = "$1" ] || fail "the source never reached $1 (last: '$st')"
	t0=$(date +%s%N)
	"$ctl" -s "$tmp/src.sock" cancel >/dev/null || fail "ternctl cancel refused in $1"
	wait_pid "$src" 30
	src=""
	ms=$((($(date +%s%N) - t0) / 1000000))
	st=$(field status "$tmp/src.out")
	say "source exited $rc $ms ms after the cancel: $st: $(field error "$tmp/src.out")"
	[ "$rc" = 1 ] || fail "source exit status $rc, expected 1"
	[ "$st" = cancelled ] || fail "source ended '$st', expected cancelled"
	# siw: a connecting rdma_cm id is destroyed only when the kernel's MPA
	# request times out (10 s in siw_cm), so a cancel in setup takes that long
	lim=5000
	case "$1:$dev" in setup:siw*) lim=15000 ;; esac
	[ "$ms" -lt "$lim" ] || fail "the cancel took $ms ms (limit $lim ms)"
	kill -CONT "$dst" 2>/dev/null
	wait_pid "$dst" 60
	dst=""
	st=$(field status "$tmp/dst.out")
	err=$(field error "$tmp/dst.out")
	say "destination exited $rc: $st: $err"
	[ "$rc" != 0 ] || fail "destination exit status 0"
	[ "$st" = failed ] || fail "destination ended '$st', expected failed"
	[ -n "$err" ] || fail "the destination gives no reason"
}

ram=32M
slow="--max-bandwidth 4M --dirty-rate 1M --dirty-ws 4M"
case $case_name in
dest-killed)
	start_dest - --ram $ram
	"$lb" --migrate-to "$uri" --ram $ram $slow --timeout 120 >"$tmp/src.out" \
		2>"$tmp/src.err" &
	src=$!
	sleep 2
	kill -KILL "$dst"
	wait "$dst" 2>/dev/null
	dst=""
	t0=$(date +%s%N)
	wait_pid "$src" 60
	src=""
	ms=$((($(date +%s%N) - t0) / 1000000))
	st=$(field status "$tmp/src.out")
	err=$(field error "$tmp/src.out")
	say "source exited $rc after $ms ms: $st: $err"
	[ "$rc" = 1 ] || fail "source exit status $rc, expected 1"
	[ "$st" = failed ] || fail "source ended '$st', expected failed"
	[ -n "$err" ] || fail "no error message"
	[ "$ms" -lt 40000 ] || fail "the source took $ms ms to notice"
	;;
source-killed)
	start_dest - --ram $ram
	"$lb" --migrate-to "$uri" --ram $ram $slow --timeout 120 >"$tmp/src.out" \
		2>"$tmp/src.err" &
	src=$!
	sleep 2
	kill -KILL "$src"
	wait "$src" 2>/dev/null
	src=""
	wait_pid "$dst" 60
	dst=""
	st=$(field status "$tmp/dst.out")
	err=$(field error "$tmp/dst.out")
	say "destination exited $rc: $st: $err"
	[ "$st" = failed ] || fail "destination ended '$st', expected failed"
	[ -n "$err" ] || fail "no error message"
	[ "$rc" != 0 ] || fail "destination exit status 0"
	;;
stopped-dest)
	start_dest - --ram $ram
	t0=$(date +%s%N)
	"$lb" --migrate-to "$uri" --ram $ram --max-bandwidth 8M --migration-timeout 5 \
		--timeout 120 >"$tmp/src.out" 2>"$tmp/src.err" &
	src=$!
	sleep 1.5
	kill -STOP "$dst"
	wait_pid "$src" 60
	src=""
	ms=$((($(date +%s%N) - t0) / 1000000))
	st=$(field status "$tmp/src.out")
	say "source exited $rc after $ms ms: $st: $(field error "$tmp/src.out")"
	[ "$st" = cancelled ] || fail "source ended '$st', expected cancelled"
	grep -q 'migration-timeout of 5 s reached' "$tmp/src.out" ||
		fail "not cancelled by its migration-timeout"
	[ "$ms" -lt 15000 ] || fail "took $ms ms (limit 15 s)"
	;;
memlock-source | memlock-dest)
	case $dev in
	rxe*)
		echo "SKIP: rxe lets root pin past RLIMIT_MEMLOCK (CAP_IPC_LOCK)"
		exit 77
		;;
	esac
	if [ "$case_name" = memlock-dest ]; then
		start_dest 4096 --ram 64M
		"$lb" --migrate-to "$uri" --ram 64M --rdma-pin-all --timeout 60 \
			>"$tmp/src.out" 2>"$tmp/src.err" &
	else
		start_dest - --ram 64M
		(ulimit -l 4096 && exec "$lb" --migrate-to "$uri" --ram 64M --rdma-pin-all \
			--timeout 60) >"$tmp/src.out" 2>"$tmp/src.err" &
	fi
	src=$!
	wait_pid "$src" 60
	src=""
	st=$(field status "$tmp/src.out")
	err=$(field error "$tmp/src.out")
	say "source exited $rc: $st: $err"
	[ "$st" = failed ] || fail "source ended '$st', expected failed"
	case $err in
	*RLIMIT_MEMLOCK*) ;;
	*) fail "the message does not name RLIMIT_MEMLOCK" ;;
	esac
	wait_pid "$dst" 30
	dst=""
	;;
cancel-setup)
	start_dest - --ram $ram
	kill -STOP "$dst"
	"$lb" --migrate-to "$uri" --ram $ram --mgmt "$tmp/src.sock" --timeout 120 \
		>"$tmp/src.out" 2>"$tmp/src.err" &
	src=$!
	cancel_in setup
	;;
cancel-active)
	start_dest - --ram $ram
	"$lb" --migrate-to "$uri" --ram $ram $slow --mgmt "$tmp/src.sock" --timeout 120 \
		>"$tmp/src.out" 2>"$tmp/src.err" &
	src=$!
	cancel_in active
	;;
cancel-pre-switchover)
	start_dest - --ram $ram
	"$lb" --migrate-to "$uri" --ram $ram --pause-before-switchover \
		--mgmt "$tmp/src.sock" --timeout 120 >"$tmp/src.out" 2>"$tmp/src.err" &
	src=$!
	cancel_in pre-switchover
	;;
*)
	echo "rdma-faults.sh: unknown case '$case_name'" >&2
	exit 2
	;;
esac
exit 0
