#!/usr/bin/env bash
# Run one pgbench scenario on loopback. Every OS process started here is
# recorded by PID and SIGKILLed on exit if still alive (never killed by name).
#
#   ./run.sh converge N M G
#   ./run.sh latency  N ITERS
#   ./run.sh loss     N M G kill|stop      (TICK=<net_ticktime s>, default 60)
#
# Env: TICK (net_ticktime, default 60), VMFLAGS (extra/override emulator
# flags, default "+S 1:1 +SDcpu 1:1 +SDio 1 +sbwt none +sbwtdcpu none +sbwtdio none";
# VMFLAGS=none runs the BEAM with its own defaults),
# LIFETIME (worker self-halt after seconds, default 170), CTL_TIMEOUT (default 150),
# PGBENCH_WORK (where ebin/ and logs/ go; default $TMPDIR/pgbench).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# Build output and logs go to a writable work dir (this folder may be read-only).
WORK=${PGBENCH_WORK:-${TMPDIR:-/tmp}/pgbench-every}
EBIN=$WORK/ebin
LOGS=$WORK/logs
mkdir -p "$EBIN" "$LOGS"
erlc -o "$EBIN" "$HERE/pgbench.erl" || exit 1

MODE=$1; shift
case $MODE in
  converge|loss) N=$1 ;;
  latency|latency_every) N=$1 ;;
  *) echo "unknown mode $MODE"; exit 2 ;;
esac

TICK=${TICK:-60}
LIFETIME=${LIFETIME:-170}
CTL_TIMEOUT=${CTL_TIMEOUT:-150}
COOKIE=pgbench_loopback_only
VMFLAGS=${VMFLAGS:-+S 1:1 +SDcpu 1:1 +SDio 1 +sbwt none +sbwtdcpu none +sbwtdio none}
[ "$VMFLAGS" = none ] && VMFLAGS=""   # VMFLAGS=none: BEAM defaults
read -r -a VM <<< "$VMFLAGS"
COMMON=(-setcookie "$COOKIE" -noinput
        -kernel inet_dist_use_interface '{127,0,0,1}'
        -kernel net_ticktime "$TICK"
        -pa "$EBIN")
export ERL_EPMD_ADDRESS=127.0.0.1

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null; fi
  done
}
trap cleanup EXIT INT TERM

# our own epmd, loopback only (only if none is running yet)
if ! epmd -names >/dev/null 2>&1; then
  epmd -address 127.0.0.1 >"$LOGS/epmd.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 50); do epmd -names >/dev/null 2>&1 && break; sleep 0.1; done
fi

for i in $(seq 1 "$N"); do
  erl -name "pgb_w$i@127.0.0.1" "${COMMON[@]}" "${VM[@]}" \
      -kernel start_pg true -s pgbench worker_init "$LIFETIME" \
      >"$LOGS/w$i.log" 2>&1 &
  PIDS+=($!)
done
echo "# started worker OS pids: ${PIDS[*]}"
echo "# cmd: erl -name pgb_wI@127.0.0.1 ${COMMON[*]} ${VM[*]} -kernel start_pg true -s pgbench worker_init $LIFETIME"

timeout "$CTL_TIMEOUT" erl -name pgb_ctl@127.0.0.1 -hidden "${COMMON[@]}" "${VM[@]}" \
    -run pgbench main "$MODE" "$@"
RC=$?
sleep 0.5
ALIVE=0
for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && ALIVE=$((ALIVE+1)); done
echo "# ctl exit code $RC; processes still alive before cleanup: $ALIVE (killed by PID now)"
exit $RC
