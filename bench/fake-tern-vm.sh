#!/bin/sh
# A stand-in for tern-vm in tern-bench's early-stop test (bench/meson.build):
# one side fails at once with a final JSON line, as tern-vm does when its
# guest cannot start; the other waits for a peer that never comes, as a real
# destination would, until tern-bench sends it SIGTERM. No KVM involved.
#
#   FAKE_VM_FAIL=source|destination   the side that fails (default source)
#   FAKE_VM_DIR=DIR                   each process writes DIR/<side>.pid (and
#                                     its sleep's, <side>.sleep.pid) so the
#                                     test can check that nothing is left
mode=${FAKE_VM_FAIL:-source}
side=
for a; do
	case $a in
	--help)
		echo "usage: fake-tern-vm.sh (--incoming URI | --migrate-to URI) [tern-vm options]"
		exit 0
		;;
	--incoming) side=destination ;;
	--migrate-to) side=source ;;
	esac
done
[ -n "$side" ] || {
	echo "fake-tern-vm: neither --incoming nor --migrate-to" >&2
	exit 2
}
[ -z "${FAKE_VM_DIR:-}" ] || echo $$ >"$FAKE_VM_DIR/$side.pid"

# the final line of a side that failed, as tern-vm prints it
final() {
	printf '{"side":"%s","status":"%s","error":"%s"}\n' "$side" "$1" "$2"
	exit 1
}

# tern-bench learns the destination's address from this first line; nothing listens there
[ "$side" = source ] || echo '{"event":"listening","uri":"tcp:127.0.0.1:9"}'
if [ "$side" = "$mode" ]; then
	# the destination fails once the source has started: tern-bench spawns it at once
	[ "$side" = source ] || sleep 0.5
	msg="vCPU 0: the guest could not start on this KVM: fake-tern-vm fails as the $side"
	echo "tern-vm: $msg" >&2
	final failed "$msg"
fi
# The sleep keeps no pipe of tern-bench's open: only this shell holds them. It is
# reaped before the final line, so nothing of ours outlives this shell.
trap 'kill $pid 2>/dev/null; wait $pid; final cancelled "migration cancelled on the $side"' TERM
sleep 60 </dev/null >/dev/null 2>&1 &
pid=$!
[ -z "${FAKE_VM_DIR:-}" ] || echo $pid >"$FAKE_VM_DIR/$side.sleep.pid"
wait $pid
final failed "fake-tern-vm: nobody stopped the $side in 60 s"
