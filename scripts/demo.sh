#!/usr/bin/env bash
# The README's run command: installs what the build needs, builds, and runs `xdptcp demo` (the
# veth test bed, the stack serving on one end, the Linux kernel driving it from the other).
# Extra arguments go to `xdptcp demo` (see `xdptcp demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
command -v cargo >/dev/null || { echo "demo.sh: cargo not found (install Rust with rustup)" >&2; exit 1; }
cargo build --release
exec target/release/xdptcp demo "$@"
