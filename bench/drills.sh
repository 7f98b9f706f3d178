#!/usr/bin/env bash
# Fault drills for groupmesh in network namespaces (run as root).
#
# Five hosts, each a network namespace with one `groupmesh node` process,
# joined through veth pairs to a bridge that lives in a sixth namespace (the
# hub). The subnet 10.213.0.0/24 exists only inside these namespaces: no
# address is added to, and no route leads out of, the host's own namespace.
#
# Drills, with every invariant checked after each heal:
#   1. cut one host's link (its veth on the bridge goes down): every other
#      node drops that host's member after the keepalive timeout; the cut
#      host drops everyone else's; then heal.
#   2. cut the path between two hosts only (blackhole routes in both
#      namespaces): just those two lose each other; then heal.
# Invariants once healed: every node lists exactly the 5 members (one per
# host), and every host has exactly one established TCP connection to each
# of the 4 others (one connection per pair), with node_up - node_down = 1 for
# each peer in its event log.
#
# Environment:
#   GROUPMESH_BIN   the CLI binary (default: built with
#                   `cargo build --release -p groupmesh`, at
#                   ${CARGO_TARGET_DIR:-<repo>/target}/release/groupmesh)
#   DRILL_KEEP      set to keep the logs directory on exit (it is printed)
#
# Exit status: 0 when every drill passed, or when namespaces cannot be
# created here (prints "skipped: <reason>"); 1 when a drill failed.

set -uo pipefail

HOSTS=5
PING_MS=200
KEEPALIVE_MS=600
PORT=7100
SUBNET=10.213.0
GROUP=drill
TAG="gmd$$"
HUB="${TAG}-hub"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
START=$(date +%s.%N)

ns() { echo "${TAG}-h$1"; }
ip_of() { echo "${SUBNET}.$((10 + $1))"; }
say() { printf '[%6.2fs] %s\n' "$(echo "$(date +%s.%N) - $START" | bc)" "$*"; }
skip() { echo "skipped: $*"; exit 0; }

# ----- preconditions ------------------------------------------------------

[ "$(id -u)" = 0 ] || skip "not root (network namespaces need CAP_NET_ADMIN)"
command -v ip >/dev/null || skip "the ip command (iproute2) is missing"
command -v bc >/dev/null || skip "bc is missing"
probe="${TAG}-probe"
if ! err=$(ip netns add "$probe" 2>&1); then
    skip "ip netns add is not permitted here: $err"
fi
ip netns del "$probe" 2>/dev/null
if ! err=$(ip link add "${TAG}-pv" type veth peer name "${TAG}-pw" 2>&1); then
    skip "veth pairs cannot be created here: $err"
fi
ip link del "${TAG}-pv" 2>/dev/null

if [ -z "${GROUPMESH_BIN:-}" ]; then
    echo "building the CLI: cargo build --release -p groupmesh"
    (cd "$ROOT" && cargo build --release -p groupmesh) || { echo "FAILED: cannot build the CLI"; exit 1; }
    GROUPMESH_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/groupmesh"
    case "$GROUPMESH_BIN" in /*) ;; *) GROUPMESH_BIN="$ROOT/$GROUPMESH_BIN" ;; esac
fi
[ -x "$GROUPMESH_BIN" ] || { echo "FAILED: no executable at GROUPMESH_BIN=$GROUPMESH_BIN"; exit 1; }

# ----- setup and cleanup --------------------------------------------------

DIR=$(mktemp -d /tmp/groupmesh-drills.XXXXXX)
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -9 "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    for i in $(seq 0 $((HOSTS - 1))); do
        ip netns del "$(ns "$i")" 2>/dev/null
    done
    ip netns del "$HUB" 2>/dev/null
    if [ -n "${DRILL_KEEP:-}" ]; then
        echo "logs kept in $DIR"
    else
        rm -rf "$DIR"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    say "FAILED: $*"
    for i in $(seq 0 $((HOSTS - 1))); do
        echo "--- h$i: members $(members "$i" | tr '\n' ' ')"
        tail -n 5 "$DIR/h$i.out" 2>/dev/null | cut -c1-300
    done
    exit 1
}

ip netns add "$HUB" || fail "ip netns add $HUB"
ip -n "$HUB" link add br0 type bridge || fail "bridge"
ip -n "$HUB" link set br0 up
ip -n "$HUB" link set lo up
for i in $(seq 0 $((HOSTS - 1))); do
    n=$(ns "$i")
    ip netns add "$n" || fail "ip netns add $n"
    ip -n "$HUB" link add "p$i" type veth peer name eth0 netns "$n" || fail "veth for h$i"
    ip -n "$HUB" link set "p$i" master br0
    ip -n "$HUB" link set "p$i" up
    ip -n "$n" link set lo up
    ip -n "$n" addr add "$(ip_of "$i")/24" dev eth0
    ip -n "$n" link set eth0 up
done
printf 'groupmesh drill secret %s\n' "$TAG" >"$DIR/secret"

for i in $(seq 0 $((HOSTS - 1))); do
    # Every host joins through h0; h0 through h1.
    seed=$(ip_of 0)
    [ "$i" = 0 ] && seed=$(ip_of 1)
    ip netns exec "$(ns "$i")" "$GROUPMESH_BIN" node --id "h$i" \
        --bind "$(ip_of "$i"):$PORT" --seed "$seed:$PORT" \
        --secret-file "$DIR/secret" --register "$GROUP" --json \
        --ping-ms "$PING_MS" --keepalive-ms "$KEEPALIVE_MS" \
        >"$DIR/h$i.out" 2>"$DIR/h$i.err" &
    PIDS+=($!)
done
say "5 hosts on ${SUBNET}.10-14 (namespaces ${TAG}-h0..h4, bridge in ${HUB}), ping ${PING_MS} ms, keepalive ${KEEPALIVE_MS} ms"

# ----- observations ---------------------------------------------------------

# The member list of the last change of the group printed by host $1, one per line.
members() {
    grep -F "\"event\":\"group\"" "$DIR/h$1.out" 2>/dev/null | grep -F "\"group\":\"$GROUP\"" | tail -n 1 |
        sed -n 's/.*"members":\[\([^]]*\)\].*/\1/p' | tr ',' '\n' | tr -d '"' | sed '/^$/d'
}

# The hosts whose port host $1 lists, sorted, space-separated (e.g. "h0 h1 h2").
member_hosts() {
    members "$1" | sed 's/#.*//' | sort | tr '\n' ' ' | sed 's/ $//'
}

all_hosts() {
    seq 0 $((HOSTS - 1)) | sed 's/^/h/' | tr '\n' ' ' | sed 's/ $//'
}

# node_up minus node_down for peer $2 in host $1's log.
link_balance() {
    local up down
    up=$(grep -F '"event":"node_up"' "$DIR/h$1.out" | grep -cF "\"node\":\"$2\"")
    down=$(grep -F '"event":"node_down"' "$DIR/h$1.out" | grep -cF "\"node\":\"$2\"")
    echo $((up - down))
}

# Established TCP connections between hosts $1 and $2, as seen in $1's namespace.
conns_between() {
    ip netns exec "$(ns "$1")" ss -Htn state established 2>/dev/null |
        awk -v a="$(ip_of "$1")" -v b="$(ip_of "$2")" '
            { l=$3; r=$4; sub(/:[0-9]+$/, "", l); sub(/:[0-9]+$/, "", r)
              if (l == a && r == b) n++ }
            END { print n + 0 }'
}

# Waits until "$2..." (a command) succeeds, at most $1 seconds; prints the time taken.
wait_until() {
    local limit=$1
    shift
    local t0 now
    t0=$(date +%s.%N)
    while ! "$@"; do
        now=$(date +%s.%N)
        if [ "$(echo "$now - $t0 > $limit" | bc)" = 1 ]; then
            return 1
        fi
        sleep 0.02
    done
    printf '%.3f\n' "$(echo "$(date +%s.%N) - $t0" | bc)"
}

# Every host in $@ (indices) lists exactly the hosts in $EXPECT.
lists() {
    local i
    for i in "$@"; do
        [ "$(member_hosts "$i")" = "$EXPECT" ] || return 1
    done
}

converged() {
    EXPECT=$(all_hosts) lists $(seq 0 $((HOSTS - 1)))
}

one_conn_per_pair() {
    local i j
    for i in $(seq 0 $((HOSTS - 1))); do
        for j in $(seq 0 $((HOSTS - 1))); do
            [ "$i" = "$j" ] && continue
            [ "$(conns_between "$i" "$j")" = 1 ] || return 1
            [ "$(link_balance "$i" "h$j")" = 1 ] || return 1
        done
    done
}

# Every invariant of a healed mesh; waits for it at most $1 seconds.
check_healed() {
    local what=$1 limit=$2 took took2
    took=$(wait_until "$limit" converged) || fail "$what: not every node lists all $HOSTS members within ${limit}s"
    say "  ok: every node lists the $HOSTS members ($(all_hosts)) after ${took}s"
    took2=$(wait_until "$limit" one_conn_per_pair) ||
        fail "$what: not exactly one established connection (and node_up - node_down = 1) per pair within ${limit}s"
    say "  ok: exactly one established connection per pair, node_up - node_down = 1 for every peer (after ${took2}s more)"
    converged || fail "$what: members changed while checking connections"
}

# ----- drills ---------------------------------------------------------------

say "mesh forming"
check_healed "initial mesh" 20

# Drill 1: one host's link cut.
victim=0
say "drill 1: cut h$victim's link (veth p$victim on the bridge down)"
ip -n "$HUB" link set "p$victim" down
others=$(seq 0 $((HOSTS - 1)) | grep -vx "$victim" | tr '\n' ' ')
limit=$(echo "$KEEPALIVE_MS * 1.2 / 1000 + 1" | bc -l)
took=$(EXPECT=$(for i in $others; do echo "h$i"; done | tr '\n' ' ' | sed 's/ $//') wait_until 10 lists $others) ||
    fail "drill 1: the others still list h$victim's member after 10s"
say "  ok: every other node dropped h$victim's member after ${took}s (keepalive ${KEEPALIVE_MS} ms)"
[ "$(echo "$took < $limit" | bc)" = 1 ] || say "  note: slower than keepalive + 20% + 1 s of polling (${limit}s)"
took=$(EXPECT="h$victim" wait_until 10 lists "$victim") || fail "drill 1: h$victim still lists other members after 10s"
say "  ok: h$victim, cut off, lists only its own member after ${took}s"
say "drill 1: heal h$victim's link"
ip -n "$HUB" link set "p$victim" up
check_healed "drill 1 heal" 30

# Drill 2: the path between two hosts only.
a=1
b=2
say "drill 2: cut h$a <-> h$b only (blackhole routes in both namespaces)"
ip -n "$(ns "$a")" route add blackhole "$(ip_of "$b")/32" || fail "blackhole route in h$a"
ip -n "$(ns "$b")" route add blackhole "$(ip_of "$a")/32" || fail "blackhole route in h$b"
without() { all_hosts | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' ' | sed 's/ $//'; }
took=$(EXPECT=$(without "h$b") wait_until 10 lists "$a") || fail "drill 2: h$a still lists h$b's member after 10s"
say "  ok: h$a dropped h$b's member after ${took}s"
took=$(EXPECT=$(without "h$a") wait_until 10 lists "$b") || fail "drill 2: h$b still lists h$a's member after 10s"
say "  ok: h$b dropped h$a's member after ${took}s"
rest=$(seq 0 $((HOSTS - 1)) | grep -vx -e "$a" -e "$b" | tr '\n' ' ')
EXPECT=$(all_hosts) lists $rest || fail "drill 2: a host outside the cut lost a member"
say "  ok: the other hosts ($(for i in $rest; do printf 'h%s ' "$i"; done | sed 's/ $//')) still list all $HOSTS members"
say "drill 2: heal h$a <-> h$b"
ip -n "$(ns "$a")" route del blackhole "$(ip_of "$b")/32"
ip -n "$(ns "$b")" route del blackhole "$(ip_of "$a")/32"
check_healed "drill 2 heal" 30

for i in $(seq 0 $((HOSTS - 1))); do
    kill -0 "${PIDS[$i]}" 2>/dev/null || fail "h$i's process died"
done
say "all drills passed"
