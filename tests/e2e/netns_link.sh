# Sourced by the e2e scripts that need a shaped link (zerocopy-veth.sh,
# switchover-link.sh): two network namespaces of the script's own,
# $ns and $nd, joined by a veth pair shaped by a token bucket on both ends,
# and a cleanup on every way out that kills the destination ($dst, if set),
# deletes the namespaces (deleting one deletes its end of the pair) and the
# script's $tmp directory.
#
#   netns_link TAG NET RATE BURST   e.g. netns_link tzc 10.79.0 1gbit 256kb
#     namespaces TAG-<pid>-s (NET.1/30) and TAG-<pid>-d (NET.2/30), tbf
#     RATE with BURST and 10 ms latency. Needs $tmp set. Exits 1 on failure.
#   netns_skip_unless_root          exits 77 without root, ip or tc.
netns_skip_unless_root() {
	if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
		echo "SKIP: needs root, ip and tc (network namespaces, veth, tbf)"
		exit 77
	fi
}

netns_cleanup() {
	if [ -n "${dst:-}" ]; then
		kill -KILL "$dst" 2>/dev/null
		wait "$dst" 2>/dev/null
	fi
	[ -n "${ns:-}" ] && ip netns del "$ns" 2>/dev/null
	[ -n "${nd:-}" ] && ip netns del "$nd" 2>/dev/null
	rm -rf "$tmp"
}

netns_link() {
	ns=$1-$$-s
	nd=$1-$$-d
	dst=""
	trap netns_cleanup EXIT
	trap 'exit 1' INT TERM
	ip netns add "$ns" &&
		ip netns add "$nd" &&
		ip link add "$1$$s" netns "$ns" type veth peer name "$1$$d" netns "$nd" &&
		ip -n "$ns" addr add "$2.1/30" dev "$1$$s" &&
		ip -n "$nd" addr add "$2.2/30" dev "$1$$d" || exit 1
	for side in "$ns $1$$s" "$nd $1$$d"; do
		set -- $side "$3" "$4"
		ip -n "$1" link set lo up &&
			ip -n "$1" link set "$2" up &&
			tc -n "$1" qdisc add dev "$2" root tbf rate "$3" burst "$4" latency 10ms ||
			exit 1
	done
}
