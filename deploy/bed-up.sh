#!/usr/bin/env bash
# Builds the veth test bed: two network namespaces joined by a veth pair, the stack on one
# end, the Linux kernel as the peer on the other. Idempotent: running it again re-applies
# every setting. Settings: see bed-env.sh (XDPTCP_* environment variables).
set -euo pipefail
. "$(dirname "$0")/bed-env.sh"

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
command -v ip >/dev/null || die "needs iproute2 (ip)"
command -v ethtool >/dev/null || die "needs ethtool"
case "$ADDR_MODE" in shared|own) ;; *) die "XDPTCP_ADDR_MODE must be shared or own" ;; esac

for ns in "$NS_SRV" "$NS_CLI"; do
	have_ns "$ns" || ip netns add "$ns"
	in_ns "$ns" ip link set lo up
done

if ! in_ns "$NS_SRV" ip link show dev "$DEV_SRV" >/dev/null 2>&1; then
	# A half-built bed (peer end left over) would make the add fail: clear it first.
	in_ns "$NS_CLI" ip link del dev "$DEV_CLI" 2>/dev/null || true
	ip link add name "$DEV_SRV" netns "$NS_SRV" \
		numtxqueues "$QUEUES" numrxqueues "$QUEUES" address "$MAC_SRV" \
		type veth peer name "$DEV_CLI" netns "$NS_CLI" \
		numtxqueues "$QUEUES" numrxqueues "$QUEUES" address "$MAC_CLI"
fi

setup_end() {
	local ns=$1 dev=$2 ip4=$3 ip6=$4 with_addr=$5
	in_ns "$ns" ip link set dev "$dev" mtu "$MTU"
	# Without this every frame reaches AF_XDP with a partial TCP checksum (checksum offload
	# leaves the kernel's sum to a device that veth does not have).
	in_ns "$ns" ethtool -K "$dev" tx off >/dev/null
	if [ "$with_addr" = yes ]; then
		in_ns "$ns" ip addr replace "$ip4" dev "$dev"
		in_ns "$ns" ip -6 addr replace "$ip6" dev "$dev" nodad
	else
		in_ns "$ns" ip addr flush dev "$dev"
	fi
	in_ns "$ns" ip link set dev "$dev" up
}

setup_end "$NS_CLI" "$DEV_CLI" "$IP4_CLI" "$IP6_CLI" yes
if [ "$ADDR_MODE" = shared ]; then
	setup_end "$NS_SRV" "$DEV_SRV" "$IP4_SRV" "$IP6_SRV" yes
else
	setup_end "$NS_SRV" "$DEV_SRV" "$IP4_SRV" "$IP6_SRV" no
fi

# veth picks the receive queue from the sender's tx queue, and the kernel re-hashes a socket
# after a SYN timeout; stop the re-hash so a flow stays on one queue (one shard).
in_ns "$NS_CLI" sysctl -qw net.core.txrehash=0 2>/dev/null ||
	echo "$(basename "$0"): warning: net.core.txrehash not settable in $NS_CLI" >&2

echo "bed up: $NS_SRV/$DEV_SRV ($MAC_SRV, ${IP4_SRV%/*}, ${IP6_SRV%/*}, $ADDR_MODE address)" \
	"<-> $NS_CLI/$DEV_CLI ($MAC_CLI, ${IP4_CLI%/*}, ${IP6_CLI%/*}), $QUEUES queue(s), mtu $MTU"
