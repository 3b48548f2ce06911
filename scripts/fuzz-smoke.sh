#!/usr/bin/env bash
# Bounded fuzzing of the wire layer and of one shard (shard_segments): each cargo-fuzz target
# runs for an equal share of FUZZ_SECONDS (default 60), from the seed corpus made of tests/data
# (shard_segments starts empty: its input is a program of steps, not a frame). Exits non-zero
# when a target crashes (the input is saved under fuzz/artifacts/<target>/).
#
#   FUZZ_SECONDS=600 scripts/fuzz-smoke.sh          # longer run
#   FUZZ_TARGETS="wire_parse" scripts/fuzz-smoke.sh  # one target
#   FUZZ_SANITIZER=address scripts/fuzz-smoke.sh    # with ASan (default none: the fuzzed
#                                                   # code is safe Rust; panics are what we hunt)
#
# No nightly toolchain is needed: cargo-fuzz passes unstable flags to rustc, which a stable
# rustc accepts with RUSTC_BOOTSTRAP=1.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
total=${FUZZ_SECONDS:-60}
read -r -a targets <<<"${FUZZ_TARGETS:-wire_parse tcp_options icmp shard_segments}"
sanitizer=${FUZZ_SANITIZER:-none}

if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "fuzz-smoke: installing cargo-fuzz" >&2
	cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

"$root/scripts/fuzz-seed.sh"

per=$((total / ${#targets[@]}))
((per >= 1)) || per=1

cd "$root"
# Build first, so the time budget goes to fuzzing, not compiling.
for t in "${targets[@]}"; do
	cargo fuzz build --sanitizer "$sanitizer" "$t"
done

failed=()
for t in "${targets[@]}"; do
	echo "fuzz-smoke: $t for ${per}s"
	mkdir -p "fuzz/artifacts/$t" "fuzz/corpus/$t"
	if ! cargo fuzz run --sanitizer "$sanitizer" "$t" "fuzz/corpus/$t" -- \
		-max_total_time="$per" -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="fuzz/artifacts/$t/"; then
		failed+=("$t")
	fi
done

if ((${#failed[@]})); then
	echo "fuzz-smoke: crash in ${failed[*]}; inputs in fuzz/artifacts/" >&2
	exit 1
fi
echo "fuzz-smoke: ${targets[*]} ran ${per}s each, no crash"
