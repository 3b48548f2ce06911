# Shared settings of the veth test bed; sourced by bed-up.sh and bed-down.sh.
# Every name and address can be overridden from the environment, so parallel tests can build
# their own beds (use the xdptest- prefix for test namespaces).

NS_SRV=${XDPTCP_NS_SRV:-xdptcp-srv}        # the stack's namespace
NS_CLI=${XDPTCP_NS_CLI:-xdptcp-cli}        # the kernel peer's namespace
DEV_SRV=${XDPTCP_DEV_SRV:-veth-stack}      # stack end of the veth pair (in NS_SRV)
DEV_CLI=${XDPTCP_DEV_CLI:-veth-peer}       # kernel end (in NS_CLI)
QUEUES=${XDPTCP_QUEUES:-1}                 # rx/tx queues on each end
MTU=${XDPTCP_MTU:-1500}                    # at most 3506 with an XDP program attached
MAC_SRV=${XDPTCP_MAC_SRV:-02:18:00:00:00:01}
MAC_CLI=${XDPTCP_MAC_CLI:-02:18:00:00:00:02}
IP4_SRV=${XDPTCP_IP4_SRV:-198.18.0.1/24}
IP4_CLI=${XDPTCP_IP4_CLI:-198.18.0.2/24}
IP6_SRV=${XDPTCP_IP6_SRV:-fd00:1813::1/64}
IP6_CLI=${XDPTCP_IP6_CLI:-fd00:1813::2/64}
# shared: the stack shares the kernel's address on DEV_SRV (the kernel answers ARP/ICMP).
# own: DEV_SRV carries no address; the stack answers for IP4_SRV/IP6_SRV itself.
ADDR_MODE=${XDPTCP_ADDR_MODE:-shared}

die() { echo "$(basename "$0"): $*" >&2; exit 1; }
have_ns() { [ -e "/var/run/netns/$1" ]; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
