#!/usr/bin/env bash
# The test command of the README: installs what the build and the tests need (Debian/Ubuntu, as
# root), builds, and runs everything: unit, scenario, simulation and property tests; the XDP
# program through BPF_PROG_TEST_RUN; the AF_XDP link and the interop tests against the Linux
# kernel on a veth bed; clippy; and a bounded fuzz run. Idempotent.
#
#   FUZZ_SECONDS=60   seconds of fuzzing in all (0 skips it)
#   SKIP_INSTALL=1    do not touch packages
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
command -v cargo >/dev/null || { echo "test.sh: cargo not found (install Rust with rustup)" >&2; exit 1; }

echo "== format"
cargo fmt --all -- --check

echo "== build"
cargo build --all-targets
cargo build --release

echo "== clippy"
cargo clippy --all-targets -- -D warnings
cargo clippy --no-default-features --all-targets -- -D warnings

echo "== docs (the library API's documentation builds without warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps

echo "== tests (privileged tests need root; with CI=true they never skip)"
# One test binary at a time for the bed tests: they build namespaces and XDP programs.
cargo test --no-fail-fast -- --test-threads=2

echo "== interop tests again, with the XDP program's SYN shield on"
XDPTCP_TEST_SERVE_ARGS="--syn-shield on" cargo test --no-fail-fast --test interop -- --test-threads=2

echo "== fuzz"
if [ "${FUZZ_SECONDS:-60}" -gt 0 ]; then
	FUZZ_SECONDS=${FUZZ_SECONDS:-60} scripts/fuzz-smoke.sh
fi
echo "== all tests passed"
