#!/usr/bin/env bash
# Removes the veth test bed built by bed-up.sh (same XDPTCP_* variables). Idempotent.
# Deleting a namespace destroys the veth end inside it, and with it the pair; any XDP
# program attached there goes with the device.
set -euo pipefail
. "$(dirname "$0")/bed-env.sh"

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
for ns in "$NS_SRV" "$NS_CLI"; do
	if have_ns "$ns"; then
		ip netns del "$ns"
	fi
done
echo "bed down: $NS_SRV, $NS_CLI removed"
