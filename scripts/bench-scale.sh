#!/usr/bin/env bash
# helix at scale, on loopback (issue 14's scale mode; outside CI, bounded in time):
#  1. 15 nodes: 5 voters and 10 learners. Idle RSS per node; write p50/p99 (1 and 16
#     clients, through every node in turn) and settings propagation to all 15 (p50/p99).
#  2. 10,000 models and 1,000 users written into the state: how long that took, how many
#     placement plans the leader made meanwhile and what they cost.
#  3. With that state: the snapshot (`helix operator snapshot save`: size, time), a log
#     compaction on every node, a 16th node's time from `join` to caught up (it is sent the
#     snapshot), RSS per node, and the writes and propagation of step 1 again.
# Prints a Markdown report and writes it into docs/performance.md between the scale markers.
#
#   scripts/bench.sh --scale             # the same as scripts/bench-scale.sh
#   BENCH_QUICK=1 scripts/bench-scale.sh # 1,000 models and 100 users, fewer requests
#
# Environment: CARGO_TARGET_DIR, BENCH_SKIP_BUILD=1, BENCH_KEEP=1 (keep the temp dir),
# BENCH_DOC (default docs/performance.md; "-" = none).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=${BENCH_QUICK:-0}
MODELS=10000 USERS=1000 WRITES=2000 CHANGES=100
[[ $QUICK == 1 ]] && MODELS=1000 USERS=100 WRITES=300 CHANGES=20
DOC=${BENCH_DOC:-$ROOT/docs/performance.md}
NODES=15
API_PORT=18580 PEER_PORT=19580
ip_of() { echo "127.0.0.$((100 + $1))"; }   # node 1..16
url_of() { echo "http://$(ip_of "$1"):$API_PORT"; }

log() { printf '[bench-scale %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
for tool in curl jq awk xargs; do command -v "$tool" >/dev/null || die "needs $tool"; done
# shellcheck source=scripts/lib/processes.sh
source "$ROOT/scripts/lib/processes.sh"
start_processes bench-scale "${BENCH_KEEP:-0}"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
HELIX=$TARGET_DIR/release/helix
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  log "cargo build --release"
  cargo build --release --quiet
fi
[[ -x $HELIX ]] || die "no release binary at $HELIX"

declare -A PID_OF=()
node_args() { echo "--data-dir $TMP/n$1 --api-addr $(ip_of "$1"):$API_PORT --peer-addr $(ip_of "$1"):$PEER_PORT --gpus none"; }
ready() { grep -qE 'node [0-9]+ ready' "$TMP/n$1.log"; }
start_node() { # K [join]
  local k=$1
  if [[ ${2:-} == join ]]; then
    # shellcheck disable=SC2046
    "$HELIX" node join "$(url_of 1)" --token "$(cat "$TMP/n1/join.token")" $(node_args "$k") >"$TMP/n$k.log" 2>&1 &
  else
    # shellcheck disable=SC2046
    "$HELIX" node start $(node_args "$k") >"$TMP/n$k.log" 2>&1 &
  fi
  PID_OF[$k]=$!
  PIDS+=("$!")
}
api() { curl -sf -m 10 -H "Authorization: Bearer $KEY" "$@"; }
status() { api "$(url_of 1)/api/v1/cluster/status"; }
settled() { # members voters
  status | jq -e --argjson m "$1" --argjson v "$2" \
    '.leader_id != null and (.members | length) == $m and ([.members[] | select(.voter)] | length) == $v' >/dev/null
}
rss_mib() { # K...: RSS of each node in MiB: min / median / max
  local k values=()
  for k in "$@"; do values+=("$(awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/${PID_OF[$k]}/status")"); done
  printf '%s\n' "${values[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%s / %s / %s", a[1], a[int((NR+1)/2)], a[NR]}'
}
bench() { # OUT ARGS...
  local out=$1; shift
  "$HELIX" bench --output json "$@" >"$TMP/$out.json" 2>"$TMP/$out.log" || die "helix bench $* failed: $(tail -3 "$TMP/$out.log")"
}
all_urls() { local k s=""; for k in $(seq 1 "$NODES"); do s+="${s:+,}$(url_of "$k")"; done; echo "$s"; }
metric() { # NAME: the sum of a metric's samples on the leader
  api "$(url_of "$LEADER")/metrics" | awk -v n="$1" '$1 == n || index($1, n "{") == 1 {s += $2} END {print s + 0}'
}

# --- 1. fifteen nodes ---------------------------------------------------------------------------
log "starting $NODES nodes on $(ip_of 1)..$(ip_of $NODES)"
T0=$(now_ms)
start_node 1
wait_until 90 "node 1 ready" ready 1
KEY=$(cat "$TMP/n1/admin.key")
for k in $(seq 2 "$NODES"); do
  start_node "$k" join
  wait_until 90 "node $k ready" ready "$k"
done
wait_until 120 "$NODES members, 5 voters" settled "$NODES" 5
START_S=$(awk -v ms=$(( $(now_ms) - T0 )) 'BEGIN {printf "%.1f", ms / 1000}')
LEADER_IP=$(status | jq -r '.leader_id as $l | .members[] | select(.id == $l) | .api_addr' | cut -d: -f1)
LEADER=$(( ${LEADER_IP##*.} - 100 ))
sleep 5 # idle: let start-up work settle before reading memory
RSS_IDLE=$(rss_mib $(seq 1 "$NODES"))
log "settled in ${START_S} s; leader node $LEADER; idle RSS min/median/max $RSS_IDLE MiB"

measure_writes() { # TAG
  bench "$1-w1" --target helix --endpoints "$(all_urls)" --api-key "$KEY" --clients 1 --count "$WRITES" --mode update --keys 100 --prefix "w$1"
  bench "$1-w16" --target helix --endpoints "$(all_urls)" --api-key "$KEY" --clients 16 --count $((WRITES * 4)) --mode update --keys 100 --prefix "w$1" --skip-setup
  bench "$1-prop" --scenario propagation --endpoints "$(all_urls)" --api-key "$KEY" --count "$CHANGES"
}
log "writes and propagation, empty state"
measure_writes empty

# --- 2. a big state -----------------------------------------------------------------------------
PLANS0=$(metric helix_scheduler_plans_total)
PLAN_S0=$(metric helix_scheduler_plan_duration_seconds_sum)
log "writing $MODELS models and $USERS users"
T0=$(now_ms)
bench models --target helix --endpoints "$(url_of "$LEADER")" --api-key "$KEY" --clients 16 --count "$MODELS" --mode create --prefix scale
seq 1 "$USERS" | xargs -P 8 -I{} curl -sf -m 10 -o /dev/null -H "Authorization: Bearer $KEY" \
  -H 'content-type: application/json' -d '{"name":"scale-user-{}"}' "$(url_of "$LEADER")/api/v1/users" \
  || die "creating users failed"
LOAD_S=$(awk -v ms=$(( $(now_ms) - T0 )) 'BEGIN {printf "%.1f", ms / 1000}')
PLANS=$(( $(metric helix_scheduler_plans_total) - PLANS0 ))
PLAN_MS=$(awk -v s="$(metric helix_scheduler_plan_duration_seconds_sum)" -v s0="$PLAN_S0" -v n="$PLANS" \
  'BEGIN {if (n > 0) printf "%.2f", (s - s0) * 1000 / n; else print "-"}')
log "state written in ${LOAD_S} s; $PLANS plans meanwhile, ${PLAN_MS} ms each"

# Placement changes do plan: $PLACED of those models made prewarm, one at a time (the nodes
# have no GPUs, so each slot is committed as pending), and the plans they cost timed.
PLACED=20
PLANS1=$(metric helix_scheduler_plans_total)
PLAN_S1=$(metric helix_scheduler_plan_duration_seconds_sum)
for i in $(seq 0 $((PLACED - 1))); do
  api -o /dev/null -X PUT -H 'content-type: application/json' -d '{"prewarm":true}' \
    "$(url_of "$LEADER")/api/v1/helix-models/scale/c0-$i" || die "making scale/c0-$i prewarm failed"
done
all_pending() {
  [[ $(api "$(url_of "$LEADER")/api/v1/slots" | jq '[.[] | select(.model_id | startswith("scale/c0-"))] | length') -ge $PLACED ]]
}
wait_until 60 "a slot for each of the $PLACED prewarm models" all_pending
PLACE_PLANS=$(( $(metric helix_scheduler_plans_total) - PLANS1 ))
PLACE_PLAN_MS=$(awk -v s="$(metric helix_scheduler_plan_duration_seconds_sum)" -v s0="$PLAN_S1" -v n="$PLACE_PLANS" \
  'BEGIN {if (n > 0) printf "%.2f", (s - s0) * 1000 / n; else print "-"}')
log "$PLACED placement changes: $PLACE_PLANS plans, ${PLACE_PLAN_MS} ms each"

# --- 3. snapshot, compaction, a new node ----------------------------------------------------------
T0=$(now_ms)
HELIX_URL=$(url_of "$LEADER") HELIX_API_KEY=$KEY "$HELIX" operator snapshot save "$TMP/state.snap" >/dev/null \
  || die "snapshot save failed"
SNAP_MS=$(( $(now_ms) - T0 ))
SNAP_MIB=$(awk -v b="$(stat -c %s "$TMP/state.snap")" 'BEGIN {printf "%.1f", b / 1048576}')
HELIX_URL=$(url_of "$LEADER") HELIX_API_KEY=$KEY "$HELIX" operator compact >/dev/null || die "compact failed"
applied() { api "$(url_of "$1")/api/v1/system/config" | jq -r .applied_index; }
compacted() { # every node purged its log behind a snapshot
  local k
  for k in $(seq 1 "$NODES"); do
    [[ $(api "$(url_of "$k")/api/v1/system/config" | jq -r '.log_purged_through // 0') -gt 0 ]] || return 1
  done
}
wait_until 120 "every node compacted its log" compacted
TARGET_INDEX=$(applied "$LEADER")
log "snapshot ${SNAP_MIB} MiB in ${SNAP_MS} ms; a 16th node joins (needs index $TARGET_INDEX)"
T0=$(now_ms)
start_node 16 join
caught_up() { ready 16 && [[ $(applied 16) -ge $TARGET_INDEX ]]; }
wait_until 300 "node 16 caught up" caught_up
JOIN_MS=$(( $(now_ms) - T0 ))
NODES=16
sleep 5
RSS_FULL=$(rss_mib $(seq 1 "$NODES"))
log "node 16 caught up in ${JOIN_MS} ms; RSS min/median/max $RSS_FULL MiB"
log "writes and propagation, with the big state"
measure_writes full

# --- report -------------------------------------------------------------------------------------
fig() { jq -r "$2" "$TMP/$1.json"; }
REPORT=$(cat <<EOF
<!-- scale:begin (written by scripts/bench-scale.sh; edit outside these markers) -->
Run: $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD), release build, loopback. 15 nodes (5 voters, 10 learners) started in ${START_S} s; a 16th joined later.

| | empty state | ${MODELS} models, ${USERS} users |
|---|---:|---:|
| write p50 / p99, 1 client (ms) | $(fig empty-w1 .latency_ms.p50) / $(fig empty-w1 .latency_ms.p99) | $(fig full-w1 .latency_ms.p50) / $(fig full-w1 .latency_ms.p99) |
| writes/s, 16 clients (p99 ms) | $(fig empty-w16 '.throughput|floor') ($(fig empty-w16 .latency_ms.p99)) | $(fig full-w16 '.throughput|floor') ($(fig full-w16 .latency_ms.p99)) |
| settings propagation to all nodes p50 / p99 (ms) | $(fig empty-prop .propagation_ms.p50) / $(fig empty-prop .propagation_ms.p99) | $(fig full-prop .propagation_ms.p50) / $(fig full-prop .propagation_ms.p99) |
| RSS per node min / median / max (MiB) | ${RSS_IDLE} | ${RSS_FULL} |

- Writing ${MODELS} models (16 clients; not prewarm, so no placement needed) and ${USERS} users: ${LOAD_S} s; the leader planned placement ${PLANS} times meanwhile.
- Then ${PLACED} of those models made prewarm, one request after another: ${PLACE_PLANS} plans (coalesced at most every 50 ms, and one after each committed decision), ${PLACE_PLAN_MS} ms per plan.
- Snapshot of that state (\`helix operator snapshot save\`: build on the leader and download): ${SNAP_MIB} MiB in ${SNAP_MS} ms.
- A new node, from \`helix node join\` to caught up (the snapshot sent and installed, then the log since): ${JOIN_MS} ms.
<!-- scale:end -->
EOF
)
printf '%s\n' "$REPORT"
if [[ $DOC != - ]]; then
  if grep -q '<!-- scale:begin' "$DOC"; then
    awk -v report="$REPORT" '
      /<!-- scale:begin/ {print report; skip = 1; next}
      /<!-- scale:end/ {skip = 0; next}
      !skip {print}' "$DOC" >"$DOC.tmp" && mv "$DOC.tmp" "$DOC"
  else
    printf '\n## Scale\n\n%s\n' "$REPORT" >>"$DOC"
  fi
  log "wrote $DOC"
fi
