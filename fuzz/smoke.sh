#!/usr/bin/env bash
# Bounded fuzz smoke for CI: builds every target and runs each for
# FUZZ_SECONDS (default 30) on stable Rust (`-s none`: no sanitizer, which
# needs nightly). Installs cargo-fuzz from crates.io if it is missing.
# New inputs go to a scratch corpus; the committed seeds stay as they are.
# A crash fails the run and leaves its input under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-30}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=(decode stream records node handshake)
cargo fuzz build -s none
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "corpus/$t"
    echo "--- fuzz $t for ${seconds}s"
    cargo fuzz run -s none "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 2>&1 |
        grep -E 'stat::number_of_executed_units|stat::peak_rss_mb|DONE.*cov:|ERROR|panicked|SUMMARY' || true
    # grep hides libFuzzer's chatter; the exit status that counts is cargo fuzz's.
    test "${PIPESTATUS[0]}" -eq 0 || { echo "fuzz target $t failed"; exit 1; }
done
