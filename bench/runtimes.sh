#!/usr/bin/env bash
# The "Runtimes" figures of docs/BENCHMARKS.md: every runtime side by side in
# one sitting. ROUNDS rounds; within a round each runtime runs every scenario
# in turn, and the order of the runtimes rotates from round to round, so a
# change in the machine's load falls on all of them alike.
#
#   CARGO_TARGET_DIR=/work/target-tokio cargo build --release -p groupmesh-bench
#   B=/work/target-tokio/release/groupmesh-bench bash bench/runtimes.sh
#
# RUNTIMES lists what runs: a runtime name, optionally with one environment
# setting for its processes after a colon (async-std:ASYNC_STD_THREAD_COUNT=1).
# Writes one JSON object per scenario run to $OUT/<scenario>-<entry>.jsonl
# and the load average before each run to $OUT/load.txt.
set -euo pipefail

B=${B:-target/release/groupmesh-bench}
OUT=${OUT:-runtimes-out}
ROUNDS=${ROUNDS:-3}
mkdir -p "$OUT"

read -r -a order <<<"${RUNTIMES:-tokio smol async-std}"
for round in $(seq 1 "$ROUNDS"); do
    for entry in "${order[@]}"; do
        rt=${entry%%:*}
        setting=${entry#"$rt"}
        setting=${setting#:}
        name=${entry//[:=]/-}
        run() { env ${setting:+"$setting"} "$B" "$@" --runtime "$rt" --json; }
        echo "round $round $entry load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load.txt" >&2
        run latency --nodes 2 >>"$OUT/latency2-$name.jsonl"
        run latency --nodes 20 >>"$OUT/latency20-$name.jsonl"
        run messages --big-count 1000 --big-mailbox 0 >>"$OUT/messages-$name.jsonl"
        run converge --runs 3 --cold-only >>"$OUT/converge-$name.jsonl"
        run memory >>"$OUT/memory-$name.jsonl"
    done
    order=("${order[@]:1}" "${order[0]}")
done
