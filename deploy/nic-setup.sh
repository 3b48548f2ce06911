#!/usr/bin/env bash
# Prepares a NIC for `xdptcp serve`: queue count, RSS spread, IRQ affinity, offloads, and the
# kernel's reserved client ports. Run it before serve starts (the systemd unit's ExecStartPre
# can, or once at boot); it is idempotent.
#
#   nic-setup.sh --iface IF --queues N [--cores LIST] [--client-ports A-B] [--dry-run]
#
#   --queues N        give IF N queues (ethtool -L combined N, or rx N tx N) and spread RSS
#                     over all of them (ethtool -X IF equal N): serve runs one core per queue
#                     and refuses to serve fewer queues than the NIC has.
#   --cores LIST      the cores serving queues 0..N-1, comma-separated (serve --cores; default
#                     0,1,...,N-1). Queue q's interrupts are pinned to core q of the list, so
#                     the softirq that fills queue q's ring runs where the thread reading it does.
#   --client-ports A-B  the port range the stack opens client connections from: written to
#                     net.ipv4.ip_local_reserved_ports so the kernel never picks those ports
#                     for its own connections (the XDP program would steer their replies away).
#   --dry-run         print every command and change nothing.
#
# Operations the device does not have (veth has no RSS and no IRQs, some drivers have no
# combined channels) are skipped with a message saying so. Exit status: 0 when IF ends with N
# receive queues, 1 otherwise or on a usage error.
set -euo pipefail

prog=$(basename "$0")
die() { echo "$prog: $*" >&2; exit 1; }
note() { echo "$prog: $*" >&2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2; exit 1; }

IFACE= QUEUES= CORES= CLIENT_PORTS= DRY=0
while [ $# -gt 0 ]; do
	case "$1" in
	--iface) IFACE=${2:-}; shift 2 ;;
	--iface=*) IFACE=${1#*=}; shift ;;
	--queues) QUEUES=${2:-}; shift 2 ;;
	--queues=*) QUEUES=${1#*=}; shift ;;
	--cores) CORES=${2:-}; shift 2 ;;
	--cores=*) CORES=${1#*=}; shift ;;
	--client-ports) CLIENT_PORTS=${2:-}; shift 2 ;;
	--client-ports=*) CLIENT_PORTS=${1#*=}; shift ;;
	--dry-run) DRY=1; shift ;;
	-h | --help) usage ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

[ -n "$IFACE" ] || die "--iface is required"
[[ "$QUEUES" =~ ^[1-9][0-9]*$ ]] || die "--queues must be a positive integer, not '$QUEUES'"
if [ -z "$CORES" ]; then
	CORES=$(seq -s, 0 $((QUEUES - 1)))
fi
IFS=, read -r -a CORE_LIST <<<"$CORES"
for c in "${CORE_LIST[@]}"; do
	[[ "$c" =~ ^[0-9]+$ ]] || die "--cores: '$c' is not a core number (LIST is e.g. 2,3)"
done
[ "${#CORE_LIST[@]}" -ge "$QUEUES" ] || die "--cores lists ${#CORE_LIST[@]} core(s) for $QUEUES queues"
if [ -n "$CLIENT_PORTS" ]; then
	[[ "$CLIENT_PORTS" =~ ^([0-9]+)-([0-9]+)$ ]] || die "--client-ports must be A-B, not '$CLIENT_PORTS'"
	lo=${BASH_REMATCH[1]} hi=${BASH_REMATCH[2]}
	{ [ "$lo" -ge 1 ] && [ "$hi" -le 65535 ] && [ "$lo" -le "$hi" ]; } ||
		die "--client-ports $CLIENT_PORTS: need 1 <= A <= B <= 65535"
fi
[ -d "/sys/class/net/$IFACE" ] || die "no interface '$IFACE' (in this network namespace)"
if [ "$DRY" = 0 ]; then
	[ "$(id -u)" -eq 0 ] || die "needs root (ethtool, /proc/irq, sysctl); --dry-run does not"
	command -v ethtool >/dev/null || die "needs ethtool"
fi

# Prints the command; runs it unless --dry-run. Returns its status, its stderr on ours.
run() {
	echo "+ $*"
	[ "$DRY" = 1 ] && return 0
	"$@"
}

# Runs an ethtool step; a device without the operation gets a skip message, not a failure.
try_step() {
	local what=$1 out
	shift
	echo "+ $*"
	[ "$DRY" = 1 ] && return 0
	if out=$("$@" 2>&1); then
		[ -n "$out" ] && echo "$out"
		return 0
	fi
	note "skip: $what on $IFACE: $(echo "$out" | tr '\n' ' ')"
	return 1
}

rx_queues() { find "/sys/class/net/$IFACE/queues" -maxdepth 1 -name 'rx-*' | wc -l; }

# 1. Queue count. Most NICs pair rx and tx in "combined" channels; veth and a few drivers
# count them separately (ethtool -l shows Combined: n/a).
echo "== $IFACE: $QUEUES queue(s)"
# (Reading the channel maximums changes nothing, so a dry run reads them too.)
if ethtool -l "$IFACE" 2>/dev/null | sed -n '/Pre-set/,/Current/p' | grep -Eq '^Combined:[[:space:]]+n/a'; then
	try_step "set rx/tx channels" ethtool -L "$IFACE" rx "$QUEUES" tx "$QUEUES" || true
else
	try_step "set combined channels" ethtool -L "$IFACE" combined "$QUEUES" ||
		try_step "set rx/tx channels" ethtool -L "$IFACE" rx "$QUEUES" tx "$QUEUES" || true
fi

# 2. RSS: hash flows over every served queue, equally.
echo "== $IFACE: RSS over $QUEUES queue(s)"
try_step "RSS indirection table" ethtool -X "$IFACE" equal "$QUEUES" || true

# 3. Offloads AF_XDP frames cannot carry. GRO and LRO (and hardware GRO) build super-frames
# beyond the MTU that XDP never sees as one frame; a VLAN tag stripped by rx-vlan-offload lives
# in the skb, not in the frame AF_XDP delivers, while our parser reads one 802.1Q tag in place
# (wire/ethernet.rs, bpf/parsing.h). Transmit offloads stay: AF_XDP transmit bypasses them
# and the stack writes its own checksums.
echo "== $IFACE: receive offloads off"
# ethtool -K takes the short name, ethtool -k prints the long one.
for pair in gro:generic-receive-offload lro:large-receive-offload rx-gro-hw:rx-gro-hw rx-vlan-offload:rx-vlan-offload; do
	f=${pair%%:*} long=${pair#*:}
	state=$(ethtool -k "$IFACE" 2>/dev/null | awk -v k="$long:" '$1 == k { print $2, $3 }' || true)
	case "$state" in
	"off [fixed]") echo "# $f: off (fixed by the driver)" ;;
	*"[fixed]") note "warning: $f is on and fixed by the driver of $IFACE: frames may reach XDP aggregated or without their VLAN tag" ;;
	*) try_step "turn $f off" ethtool -K "$IFACE" "$f" off || true ;;
	esac
done

# 4. IRQ affinity: queue q's interrupts on core q of --cores. A queue's IRQ is named after the
# interface or the device (eth1-TxRx-3, ens5-Tx-Rx-3, mlx5_comp3@pci:..., virtio0-input.3);
# the trailing number is the queue. Only IRQs of this device (its msi_irqs, or an IRQ line
# naming the interface) are touched. NIC_SETUP_INTERRUPTS replaces /proc/interrupts (tests).
echo "== $IFACE: IRQ affinity (queue q -> core ${CORES})"
INTERRUPTS=${NIC_SETUP_INTERRUPTS:-/proc/interrupts}
irqs_of_device() {
	local d="/sys/class/net/$IFACE/device/msi_irqs"
	[ -d "$d" ] && ls "$d"
	awk -v ifc="$IFACE" '$NF ~ ("^" ifc "[-_.]") { sub(":", "", $1); print $1 }' "$INTERRUPTS"
}
mapped=0
for irq in $(irqs_of_device | sort -un); do
	name=$(awk -v n="$irq:" '$1 == n { print $NF }' "$INTERRUPTS")
	base=${name%%@*}
	# Control and management vectors (async events, config changes) serve no queue.
	case "$base" in *async* | *ctrl* | *config* | *mgmt* | *-fw*) continue ;; esac
	[[ "$base" =~ ([0-9]+)$ ]] || continue
	q=$((10#${BASH_REMATCH[1]}))
	[ "$q" -lt "$QUEUES" ] || continue
	core=${CORE_LIST[$q]}
	echo "# irq $irq ($name) serves queue $q -> core $core"
	if [ "$DRY" = 1 ]; then
		echo "+ echo $core > /proc/irq/$irq/smp_affinity_list"
	elif ! echo "$core" >"/proc/irq/$irq/smp_affinity_list" 2>/dev/null; then
		note "skip: irq $irq: the kernel refused affinity $core (managed IRQ, or core offline)"
	fi
	mapped=$((mapped + 1))
done
if [ "$mapped" = 0 ]; then
	note "skip: IRQ affinity: no queue interrupts found for $IFACE (virtual device such as veth, or IRQs named otherwise: set /proc/irq/N/smp_affinity_list by hand)"
elif pgrep -x irqbalance >/dev/null 2>&1; then
	note "warning: irqbalance is running and will move these IRQs again: stop it (systemctl disable --now irqbalance) or ban the serving cores (IRQBALANCE_BANNED_CPULIST=${CORES})"
fi

# 5. The client port range, reserved from the kernel's own ephemeral port choice.
if [ -n "$CLIENT_PORTS" ]; then
	echo "== reserve ports $CLIENT_PORTS from the kernel's ephemeral choice"
	run sysctl -q -w "net.ipv4.ip_local_reserved_ports=$CLIENT_PORTS" ||
		die "sysctl net.ipv4.ip_local_reserved_ports=$CLIENT_PORTS failed"
fi

# The one outcome serve depends on: it refuses to serve fewer queues than the NIC has.
if [ "$DRY" = 0 ]; then
	have=$(rx_queues)
	[ "$have" = "$QUEUES" ] || die "$IFACE has $have receive queue(s), not $QUEUES (see the skip messages above)"
	echo "== $IFACE ready: $have queue(s); serve with --queues $QUEUES --cores ${CORES}"
else
	echo "== dry run: nothing changed"
fi
