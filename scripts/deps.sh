#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the build, the demo and the tests need (as root; a no-op
# for packages already there). The Rust toolchain itself comes from rustup.
set -euo pipefail
if [ "${SKIP_INSTALL:-0}" = 1 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
	echo "deps.sh: not root or no apt-get: not installing packages" >&2
	exit 0
fi
echo "== installing packages (apt-get)"
apt-get update -qq
# tshark (tests/ops_observe.rs reads --pcap files) asks whether non-root users may capture;
# noninteractive keeps its default (no). python3-prometheus-client is the reference parser of
# the metrics text format, used under /usr/bin/python3. nftables: tests/ops_loss.rs drops and
# marks packets in the peer namespace (this kernel has no netem). nginx, haproxy and wrk: the
# relay's tests (tests/proxy_bed.rs) and `bench proxy` put nginx behind it, HAProxy beside it.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	clang m4 libelf-dev zlib1g-dev pkg-config make iproute2 ethtool curl iputils-ping \
	python3 procps util-linux systemd python3-venv tshark python3-prometheus-client nftables \
	nginx haproxy wrk >/dev/null

# tests/ops_deploy.rs validates deploy/k8s/*.yaml with kubernetes-validate (offline schemas),
# from PyPI into a venv of its own so the system Python stays untouched. Idempotent.
VENV=/opt/xdptcp-venv
if [ ! -x "$VENV/bin/kubernetes-validate" ]; then
	echo "== installing kubernetes-validate into $VENV (pip)"
	[ -x "$VENV/bin/pip" ] || /usr/bin/python3 -m venv "$VENV"
	"$VENV/bin/pip" install -q kubernetes-validate
fi
