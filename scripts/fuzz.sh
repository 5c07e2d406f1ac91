#!/usr/bin/env bash
# Fuzz the plan loader with cargo-fuzz (libFuzzer), each target for $1 seconds (default 60).
#
#   scripts/fuzz.sh          # 60 s per target
#   scripts/fuzz.sh 600      # 10 min per target
#
# Only the stable toolchain is needed: RUSTC_BOOTSTRAP=1 lets stable rustc accept the
# nightly-only flags cargo-fuzz passes (-Zsanitizer=address, ...).
# The growing corpus goes to fuzz/corpus/<target>/ (git-ignored); the seeds in
# fuzz/seeds/<target>/ are given second, so libFuzzer only reads them.
# A crash is saved under fuzz/artifacts/<target>/ and the script exits non-zero after
# running every target. A build failure stops the script at once (exit 2).
set -euo pipefail

seconds="${1:-60}"
targets=(load load_with_parameters)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi

export RUSTC_BOOTSTRAP=1

if ! cargo fuzz build; then
    echo "=== build failed: nothing was fuzzed" >&2
    exit 2
fi

status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    echo "=== $target: ${seconds}s" >&2
    if ! cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 -print_final_stats=1; then
        echo "=== $target: crash, see fuzz/artifacts/$target/" >&2
        status=1
    fi
done
exit "$status"
