#!/usr/bin/env bash
# Regenerates the golden frames in this directory from a real exchange between Linux kernels.
#
#   wiretest-a (client) ──veth── wiretest-r (router) ──veth── wiretest-b (server)
#   a0 198.18.0.1/24            r0 198.18.0.254/24
#      2001:db8:a::1/64            2001:db8:a::fe/64
#                               r1 198.18.1.254/24, MTU 1280   b1 198.18.1.2/24, MTU 1500
#                                  2001:db8:b::fe/64              2001:db8:b::2/64
#
# The kernel on the test machines has no 802.1Q support (CONFIG_VLAN_8021Q unset), so the tagged
# fixture linux_vlan_syn.bin is linux_syn.bin with a tag inserted by extract.py (VLAN 100, PCP 0).
#
# Every frame is captured with tcpdump on a0, so it is exactly what the kernel put on (or took
# off) that wire. Checksum, segmentation and receive offloads are off on every device, so every
# checksum in the capture is complete and no frame is larger than the MTU.
#
# The router's egress towards b has MTU 1280 while b advertises MSS 1460, so a full-sized
# segment from a (DF set, as Linux always sets it on TCP) makes the router send ICMP
# "fragmentation needed" (IPv4) and "packet too big" (IPv6) quoting that segment.
#
# Needs root, iproute2, ethtool, tcpdump, python3 (standard library only). Creates only wiretest-* namespaces, uses
# only 198.18.0.0/15 and 2001:db8::/32, and removes everything on exit.
#
# Usage: sudo tests/data/capture.sh   (then review `git diff --stat tests/data`)
# The frames carry random ISNs, timestamps and IP IDs: after regenerating, the expected values
# in tests/wire_golden.rs must be updated from `python3 tests/data/extract.py --dump`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
A=wiretest-a R=wiretest-r B=wiretest-b
pcap=$(mktemp /tmp/wiretest-XXXXXX.pcap)
tcpdump_pid=

cleanup() {
	if [[ -n $tcpdump_pid ]]; then kill "$tcpdump_pid" 2>/dev/null || true; fi
	for ns in $A $R $B; do ip netns del "$ns" 2>/dev/null || true; done
	rm -f "$pcap"
}
trap cleanup EXIT

for ns in $A $R $B; do
	if ip netns list | grep -qw "$ns"; then
		echo "namespace $ns already exists; remove it first" >&2
		exit 1
	fi
	ip netns add "$ns"
	ip -n "$ns" link set lo up
done

ip link add a0 netns $A type veth peer name r0 netns $R
ip link add r1 netns $R type veth peer name b1 netns $B
ip -n $A link set a0 address 02:00:5e:00:00:0a
ip -n $R link set r0 address 02:00:5e:00:00:fe
ip -n $R link set r1 address 02:00:5e:00:01:fe
ip -n $B link set b1 address 02:00:5e:00:01:0b
ip -n $R link set r1 mtu 1280

# Offloads off on every device (see above). `tx off` is what the test bed needs anyway.
for dev in "$A a0" "$R r0" "$R r1" "$B b1"; do
	set -- $dev
	ip netns exec "$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null 2>&1 ||
		ip netns exec "$1" ethtool -K "$2" tx off
done

ip -n $A addr add 198.18.0.1/24 dev a0
ip -n $A addr add 2001:db8:a::1/64 dev a0 nodad
ip -n $R addr add 198.18.0.254/24 dev r0
ip -n $R addr add 2001:db8:a::fe/64 dev r0 nodad
ip -n $R addr add 198.18.1.254/24 dev r1
ip -n $R addr add 2001:db8:b::fe/64 dev r1 nodad
ip -n $B addr add 198.18.1.2/24 dev b1
ip -n $B addr add 2001:db8:b::2/64 dev b1 nodad
for pair in "$A a0" "$R r0" "$R r1" "$B b1"; do
	set -- $pair
	ip -n "$1" link set "$2" up
done
ip -n $A route add default via 198.18.0.254
ip -n $A -6 route add default via 2001:db8:a::fe
ip -n $B route add default via 198.18.1.254
ip -n $B -6 route add default via 2001:db8:b::fe
ip netns exec $R sysctl -qw net.ipv4.ip_forward=1
ip netns exec $R sysctl -qw net.ipv6.conf.all.forwarding=1
# Keep the frag-needed/PTB from being rate limited away.
ip netns exec $R sysctl -qw net.ipv4.icmp_ratelimit=0
ip netns exec $R sysctl -qw net.ipv6.icmp.ratelimit=0

ip netns exec $A tcpdump -i a0 -U -s 0 -w "$pcap" 2>/dev/null &
tcpdump_pid=$!
sleep 1.5

# Server in b: accepts, reads until EOF, closes. Port 5001; 5002 stays closed (RST).
ip netns exec $B timeout 20 python3 - <<'EOF' &
import socket, threading
def serve(family, addr):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 5001))
    s.listen(8)
    s.settimeout(15)
    try:
        while True:
            c, _ = s.accept()
            c.settimeout(5)
            try:
                while c.recv(65536):
                    pass
            except OSError:
                pass
            c.close()
    except OSError:
        pass
threading.Thread(target=serve, args=(socket.AF_INET6, "2001:db8:b::2"), daemon=True).start()
serve(socket.AF_INET, "198.18.1.2")
EOF
server_pid=$!
sleep 1

ip netns exec $A timeout 20 python3 - <<'EOF'
import socket, time

def connect(family, dst, sport):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", sport))
    s.settimeout(5)
    s.connect(dst)
    return s

# 1. Handshake, one small data segment, orderly close from the client.
s = connect(socket.AF_INET, ("198.18.1.2", 5001), 40001)
time.sleep(0.2)
s.sendall(b"hello xdptcp\n")
time.sleep(0.2)
s.close()
time.sleep(0.5)

# 2. A SYN to a closed port: the kernel answers RST,ACK.
try:
    connect(socket.AF_INET, ("198.18.1.2", 5002), 40002)
except OSError:
    pass
time.sleep(0.2)

# 3. Full-sized segments through the 1280-byte hop: ICMP fragmentation needed.
s = connect(socket.AF_INET, ("198.18.1.2", 5001), 40003)
s.sendall(bytes(range(256)) * 16)
time.sleep(0.5)
s.close()
time.sleep(0.3)

# 4. The same over IPv6: SYN, SYN-ACK, packet too big.
s = connect(socket.AF_INET6, ("2001:db8:b::2", 5001), 40004)
s.sendall(bytes(range(256)) * 16)
time.sleep(0.5)
s.close()
time.sleep(0.3)
EOF

# 5. ICMP echo request and reply, through a kernel "ping socket" (the kernel fills in the
#    identifier, which is the socket's port, and the checksum).
ip netns exec $A sysctl -qw net.ipv4.ping_group_range="0 0"
ip netns exec $A timeout 10 python3 - <<'EOF'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
s.bind(("", 0x7864))
s.settimeout(3)
s.sendto(bytes([8, 0, 0, 0, 0, 0, 0, 1]) + b"xdptcp golden echo 01234", ("198.18.1.2", 0))
s.recv(128)
EOF

sleep 1
kill "$tcpdump_pid"
wait "$tcpdump_pid" 2>/dev/null || true
tcpdump_pid=
kill "$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true

python3 "$here/extract.py" "$pcap" "$here"
cp "$pcap" "$here/linux_exchange.pcap"
echo "wrote golden frames to $here"
