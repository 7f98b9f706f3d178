#!/usr/bin/env bash
# The "Notify latency against Erlang pg, position for position" figures of
# docs/BENCHMARKS.md: groupmesh and Erlang/OTP `pg` alternated in one sitting.
# Each of ROUNDS rounds runs, for N in $SIZES:
#   - groupmesh `latency --runner-on-a` (the rounds run inside A, B's monitor
#     tells A by a message: Erlang's bench's method) and Erlang's `latency`;
#   - the same with `--every-node` and the Erlang bench copy's
#     `latency_every`: when the first, second, middle and last node knew.
# Needs erlang-base (`apt-get install -y --no-install-recommends erlang-base`)
# and a release build of the bench:
#
#   cargo build --release -p groupmesh-bench
#   bash bench/latency-vs-erlang.sh
#
# Writes every run's output to $OUT/<what>-N<n>-r<round>.txt and the load
# average before each run to $OUT/load.txt.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
B=${B:-$HERE/../target/release/groupmesh-bench}
OUT=${OUT:-latency-vs-erlang-out}
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-1000}
SIZES=${SIZES:-5 20}
ERL=$HERE/peers/erlang-pg-every/run.sh
mkdir -p "$OUT"

run() {
    local name=$1
    shift
    echo "$name load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load.txt" >&2
    "$@" >"$OUT/$name.txt" 2>&1
}

for round in $(seq 1 "$ROUNDS"); do
    for n in $SIZES; do
        run "ours-runner-N$n-r$round" "$B" latency --nodes "$n" --iters "$ITERS" --runner-on-a --runtime tokio
        run "erlang-N$n-r$round" "$ERL" latency "$n" "$ITERS"
        run "ours-every-N$n-r$round" "$B" latency --nodes "$n" --iters "$ITERS" --runner-on-a --every-node --runtime tokio
        run "erlang-every-N$n-r$round" "$ERL" latency_every "$n" "$ITERS"
    done
done
