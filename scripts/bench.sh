#!/usr/bin/env bash
# helix and etcd side by side: a 3-node cluster of each on loopback, fresh data dirs, the same
# load generator (`helix bench`) and the same 100-byte values, measured one system after the
# other in the same run. Prints a table and writes it into docs/performance.md (between the
# bench markers). Stops every process it started and removes its temp dir on any exit.
#
#   scripts/bench.sh                 # the full run (a few minutes)
#   BENCH_QUICK=1 scripts/bench.sh   # a short run to try the script (figures not comparable)
#   scripts/bench.sh --scale         # helix alone at scale: scripts/bench-scale.sh
#
# Environment:
#   CARGO_TARGET_DIR   where the release build goes (default: target)
#   BENCH_DOC          the report to update (default: docs/performance.md; "-" = none)
#   BENCH_SOAK_S       the full-load run that counts leader changes (default 60)
#   BENCH_FAILOVER_ROUNDS  leader kills (default 5)
#   HELIX_RAFT_TOML    a [raft] section for every helix node (default: none, the shipped timing)
#   BENCH_SYSTEMS      which systems to measure (default "helix etcd"; the report needs both)
#   BENCH_SKIP_BUILD=1 use the existing release binary
#   BENCH_KEEP=1       keep the temp dir (logs, data, JSON results) and print where it is
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
case ${1:-} in
  --scale) shift; exec scripts/bench-scale.sh "$@" ;;
  "") ;;
  *) echo "bench: unknown argument $1 (--scale, or none)" >&2; exit 2 ;;
esac

QUICK=${BENCH_QUICK:-0}
SEQ_COUNT=2000
LOAD_S=10
SOAK_S=${BENCH_SOAK_S:-60}
FAILOVER_ROUNDS=${BENCH_FAILOVER_ROUNDS:-5}
PROPAGATION_CHANGES=200
if [[ $QUICK == 1 ]]; then
  SEQ_COUNT=300 LOAD_S=3 SOAK_S=${BENCH_SOAK_S:-5} FAILOVER_ROUNDS=${BENCH_FAILOVER_ROUNDS:-2}
  PROPAGATION_CHANGES=40
fi
DOC=${BENCH_DOC:-$ROOT/docs/performance.md}
SYSTEMS=${BENCH_SYSTEMS:-helix etcd}
# Every write rewrites one of KEYS models/keys (created first, untimed), so both systems
# hold the same, steady amount of data whatever the run's length.
KEYS=1000
WRITE_ARGS=(--mode update --keys "$KEYS" --prefix bench)
# Raft timing for helix: the shipped defaults unless told otherwise, so the figures are what
# a user gets.
HELIX_RAFT_TOML=${HELIX_RAFT_TOML:-}

# Loopback addresses and fixed ports below the ephemeral range (tests use ephemeral ports).
HELIX_IPS=(127.0.0.61 127.0.0.62 127.0.0.63)
ETCD_IPS=(127.0.0.71 127.0.0.72 127.0.0.73)
API_PORT=18480 PEER_PORT=19480 ETCD_CLIENT_PORT=12479 ETCD_PEER_PORT=12480

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Tools

apt_install() {
  command -v apt-get >/dev/null || die "need $* (no apt-get here to install it)"
  log "installing $* with apt-get"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
for tool in curl jq awk; do
  command -v "$tool" >/dev/null || apt_install "$tool"
done
if [[ " $SYSTEMS " == *" etcd "* ]] && ! command -v etcd >/dev/null; then
  command -v apt-cache >/dev/null && apt-cache policy etcd-server | sed -n 1,3p >&2 || true
  apt_install etcd-server
fi
ETCD_VERSION=$(etcd --version 2>/dev/null | awk '/etcd Version/ {print $3}' || true)

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
HELIX=$TARGET_DIR/release/helix
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  log "cargo build --release"
  cargo build --release --quiet
fi
[[ -x $HELIX ]] || die "no release binary at $HELIX"

# ---------------------------------------------------------------------------------------------
# Processes: everything started is tracked here and stopped on exit.

TMP=$(mktemp -d "${TMPDIR:-/tmp}/helix-bench.XXXXXX")
declare -A PID=()   # member name -> its current process
ALL_PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "${ALL_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for p in "${ALL_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for p in "${ALL_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ $rc != 0 && -d $TMP ]]; then
    for f in "$TMP"/*.log; do [[ -f $f ]] && { echo "--- tail of $f" >&2; tail -n 15 "$f" >&2; }; done
  fi
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then
    echo "kept $TMP" >&2
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: run CMD in the background, output in $TMP/NAME.log (fresh each start).
start() {
  local name=$1; shift
  # A restarted member's earlier log is kept beside the new one (for BENCH_KEEP=1).
  [[ -e $TMP/$name.log ]] && mv "$TMP/$name.log" "$TMP/$name.log.$(date +%s%3N)"
  "$@" >"$TMP/$name.log" 2>&1 &
  PID[$name]=$!
  ALL_PIDS+=("$!")
}

kill9() { kill -KILL "${PID[$1]}" 2>/dev/null || true; wait "${PID[$1]}" 2>/dev/null || true; }

now_ms() { date +%s%3N; }

# wait_until SECONDS DESCRIPTION CMD...: poll CMD every 50 ms.
wait_until() {
  local limit=$1 what=$2; shift 2
  local deadline=$(( $(now_ms) + limit * 1000 ))
  until "$@" >/dev/null 2>&1; do
    (( $(now_ms) < deadline )) || die "timed out after ${limit}s waiting for $what"
    sleep 0.05
  done
}

port_free() { ! (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# CPU seconds (user+system) and RSS (KiB) of a process, from /proc.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
CLK_TCK=$(getconf CLK_TCK)

# sample_rss FILE NAMES...: every 250 ms, the RSS of each member, until killed.
sample_rss() {
  local file=$1; shift
  while true; do
    local line=""
    for n in "$@"; do line+="$(rss_kib "${PID[$n]}" 2>/dev/null || echo 0) "; done
    echo "$line" >>"$file"
    sleep 0.25
  done
}

# ---------------------------------------------------------------------------------------------
# The machine

CPU_MODEL=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
NPROC=$(nproc)
MEM_GIB=$(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo)
DISK_DEV=$(df --output=source "$TMP" | tail -1)
DISK_FS=$(df --output=fstype "$TMP" | tail -1)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

RESULTS=$TMP/results
mkdir -p "$RESULTS"

# bench OUT ARGS...: run `helix bench --output json`, keep its JSON in $RESULTS/OUT.json.
bench() {
  local out=$1; shift
  "$HELIX" bench --output json "$@" >"$RESULTS/$out.json" 2>"$TMP/bench-$out.log" \
    || die "helix bench $* failed: $(tail -3 "$TMP/bench-$out.log")"
}

# The floor of a replicated write here: an fdatasync of a 4 KiB append on the disk under the
# data dirs, and a loopback round trip (p50 of each; floor = fdatasync + 2 round trips).
bench floor --scenario floor --dir "$TMP" --count 2000
FSYNC_MS=$(jq -r '.fdatasync_ms.p50' "$RESULTS/floor.json")
RTT_MS=$(jq -r '.loopback_rtt_ms.p50' "$RESULTS/floor.json")
FLOOR_MS=$(jq -r '.floor_ms' "$RESULTS/floor.json")
log "machine: $NPROC x $CPU_MODEL, ${MEM_GIB} GiB, $DISK_DEV ($DISK_FS), fdatasync p50 ${FSYNC_MS} ms, loopback RTT p50 ${RTT_MS} ms, load $LOAD_BEFORE"

# ---------------------------------------------------------------------------------------------
# helix

HELIX_KEY=""
helix_url() { echo "http://${HELIX_IPS[$1]}:$API_PORT"; }
helix_args() {
  echo "--data-dir $TMP/h$1 --api-addr ${HELIX_IPS[$1]}:$API_PORT --peer-addr ${HELIX_IPS[$1]}:$PEER_PORT --gpus none --config $TMP/helix.toml"
}
helix_printed_ready() { grep -qE 'node [0-9]+ ready' "$TMP/h$1.log"; }
helix_status() { curl -sf -m 2 -H "Authorization: Bearer $HELIX_KEY" "$(helix_url "$1")/api/v1/cluster/status"; }
# Every member a voter and reachable, a leader known: asked of node $1.
helix_healthy() {
  helix_status "$1" | jq -e '.leader_id != null and .quorum.voters == 3
    and .quorum.reachable_voters == 3 and ([.members[] | select(.voter)] | length) == 3' >/dev/null
}
helix_leader_index() {
  local s
  for i in 0 1 2; do
    s=$(helix_status "$i" 2>/dev/null) || continue
    local addr
    addr=$(jq -r '.leader_id as $l | .members[] | select(.id == $l) | .api_addr' <<<"$s")
    for j in 0 1 2; do [[ $addr == "${HELIX_IPS[$j]}:$API_PORT" ]] && { echo "$j"; return 0; }; done
  done
  return 1
}
helix_term() { helix_status "$1" | jq -r .term; }
helix_start_member() { # index [join]
  local i=$1
  if [[ ${2:-} == join ]]; then
    # shellcheck disable=SC2046
    start "h$i" "$HELIX" node join "$(helix_url 0)" --token "$(cat "$TMP/h0/join.token")" $(helix_args "$i")
  else
    # shellcheck disable=SC2046
    start "h$i" "$HELIX" node start $(helix_args "$i")
  fi
  wait_until 90 "helix node $i to print ready" helix_printed_ready "$i"
}

setup_helix() {
  for i in 0 1 2; do
    port_free "${HELIX_IPS[$i]}" $API_PORT && port_free "${HELIX_IPS[$i]}" $PEER_PORT \
      || die "${HELIX_IPS[$i]}:$API_PORT or :$PEER_PORT is in use"
  done
  printf '%s\n' "$HELIX_RAFT_TOML" >"$TMP/helix.toml"
  helix_start_member 0
  HELIX_KEY=$(cat "$TMP/h0/admin.key")
  helix_start_member 1 join
  helix_start_member 2 join
  wait_until 60 "3 helix voters" helix_healthy 0
}

# ---------------------------------------------------------------------------------------------
# etcd (its default timing: heartbeat 100 ms, election 1000 ms)

etcd_url() { echo "http://${ETCD_IPS[$1]}:$ETCD_CLIENT_PORT"; }
etcd_start_member() {
  local i=$1 cluster=""
  for j in 0 1 2; do cluster+="${cluster:+,}e$j=http://${ETCD_IPS[$j]}:$ETCD_PEER_PORT"; done
  start "e$i" etcd --name "e$i" --data-dir "$TMP/e$i" \
    --listen-client-urls "$(etcd_url "$i")" --advertise-client-urls "$(etcd_url "$i")" \
    --listen-peer-urls "http://${ETCD_IPS[$i]}:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://${ETCD_IPS[$i]}:$ETCD_PEER_PORT" \
    --initial-cluster "$cluster" --initial-cluster-token helix-bench --initial-cluster-state new \
    --logger zap --log-level warn
}
etcd_status() { curl -sf -m 2 -X POST -d '{}' "$(etcd_url "$1")/v3/maintenance/status"; }
etcd_healthy() {
  for i in 0 1 2; do
    curl -sf -m 2 "$(etcd_url "$i")/health" | jq -e '.health == "true"' >/dev/null || return 1
  done
}
etcd_leader_index() {
  for i in 0 1 2; do
    local s
    s=$(etcd_status "$i" 2>/dev/null) || continue
    if jq -e '.header.member_id == .leader' >/dev/null <<<"$s"; then echo "$i"; return 0; fi
  done
  return 1
}
etcd_term() { etcd_status "$1" | jq -r .raftTerm; }

setup_etcd() {
  for i in 0 1 2; do
    port_free "${ETCD_IPS[$i]}" $ETCD_CLIENT_PORT && port_free "${ETCD_IPS[$i]}" $ETCD_PEER_PORT \
      || die "${ETCD_IPS[$i]}:$ETCD_CLIENT_PORT or :$ETCD_PEER_PORT is in use"
  done
  for i in 0 1 2; do etcd_start_member "$i"; done
  wait_until 60 "etcd to be healthy" etcd_healthy
}

# ---------------------------------------------------------------------------------------------
# One system's measurements. $1 = helix | etcd; writes $RESULTS/$1-*.json and $RESULTS/$1.env.

measure() {
  local sys=$1
  local names=() urls=() auth=()
  for i in 0 1 2; do names+=("${sys:0:1}$i"); done
  if [[ $sys == helix ]]; then
    for i in 0 1 2; do urls+=("$(helix_url "$i")"); done
    auth=(--target helix --api-key "$HELIX_KEY")
  else
    for i in 0 1 2; do urls+=("$(etcd_url "$i")"); done
    auth=(--target etcd)
  fi
  local all
  all=$(IFS=,; echo "${urls[*]}")
  local env=$RESULTS/$sys.env
  : >"$env"

  sleep 2 # let startup work settle before reading idle memory
  local idle=()
  for n in "${names[@]}"; do idle+=("$(rss_kib "${PID[$n]}")"); done
  echo "idle_rss_kib='${idle[*]}'" >>"$env"

  local leader
  leader=$("${sys}_leader_index") || die "no $sys leader"
  local term0
  term0=$("${sys}_term" "$leader")

  log "$sys: 1 client, $SEQ_COUNT sequential writes to the leader"
  bench "$sys-seq" "${auth[@]}" "${WRITE_ARGS[@]}" --endpoints "${urls[$leader]}" --clients 1 \
    --count "$SEQ_COUNT"

  for c in 16 64; do
    log "$sys: $c clients for ${LOAD_S}s over the 3 members"
    local cpu0=0 cpu1=0
    for n in "${names[@]}"; do cpu0=$(( cpu0 + $(cpu_ticks "${PID[$n]}") )); done
    sample_rss "$RESULTS/$sys-rss-$c.txt" "${names[@]}" &
    local sampler=$!
    ALL_PIDS+=("$sampler")
    bench "$sys-c$c" "${auth[@]}" "${WRITE_ARGS[@]}" --endpoints "$all" --clients "$c" \
      --duration "$LOAD_S"
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    for n in "${names[@]}"; do cpu1=$(( cpu1 + $(cpu_ticks "${PID[$n]}") )); done
    local ok
    ok=$(jq .ok "$RESULTS/$sys-c$c.json")
    echo "cpu_us_per_write_c$c=$(awk -v t=$(( cpu1 - cpu0 )) -v hz="$CLK_TCK" -v n="$ok" \
      'BEGIN {printf "%.0f", (n > 0 ? t / hz * 1e6 / n : 0)}')" >>"$env"
  done
  # Peak RSS per member over both load runs.
  echo "load_rss_kib='$(cat "$RESULTS/$sys-rss-16.txt" "$RESULTS/$sys-rss-64.txt" \
    | awk '{for (i=1;i<=NF;i++) if ($i>m[i]) m[i]=$i} END {print m[1], m[2], m[3]}')'" >>"$env"

  log "$sys: ${SOAK_S}s at 64 clients, counting leader changes"
  bench "$sys-soak" "${auth[@]}" "${WRITE_ARGS[@]}" --endpoints "$all" --clients 64 \
    --duration "$SOAK_S"
  leader=$("${sys}_leader_index") || die "no $sys leader after the soak"
  local term1
  term1=$("${sys}_term" "$leader")
  echo "term_before=$term0 term_after=$term1" >>"$env"

  if [[ $sys == helix ]]; then
    log "helix: propagation of $PROPAGATION_CHANGES settings changes to every member"
    local order=("${urls[$leader]}")
    for i in 0 1 2; do [[ $i != "$leader" ]] && order+=("${urls[$i]}"); done
    bench helix-propagation "${auth[@]}" --scenario propagation --count "$PROPAGATION_CHANGES" \
      --endpoints "$(IFS=,; echo "${order[*]}")"
  fi

  local windows=() round=0 attempts=0
  while (( round < FAILOVER_ROUNDS )); do
    (( attempts++ < 2 * FAILOVER_ROUNDS )) || die "$sys: the leader kept moving; failover rounds abandoned"
    round=$(( round + 1 ))
    leader=$("${sys}_leader_index") || die "no $sys leader before failover round $round"
    local others=()
    for i in 0 1 2; do [[ $i != "$leader" ]] && others+=("${urls[$i]}"); done
    log "$sys: failover round $round: kill -9 ${names[$leader]} while 8 clients write to the others"
    "$HELIX" bench --output json "${auth[@]}" "${WRITE_ARGS[@]}" \
      --skip-setup --endpoints "$(IFS=,; echo "${others[*]}")" \
      --clients 8 --duration 6 --gaps-over-ms 10 --timeout-ms 1000 \
      >"$RESULTS/$sys-failover-$round.json" 2>"$TMP/bench-failover.log" &
    local bench_pid=$!
    ALL_PIDS+=("$bench_pid")
    sleep 1.5
    local now_leader
    now_leader=$("${sys}_leader_index" || echo none)
    if [[ $now_leader != "$leader" ]]; then
      # Leadership moved on its own since the round began: not a measurement; again.
      wait "$bench_pid" || true
      log "$sys: round $round: the leader moved before the kill (${names[$leader]} → $now_leader); repeating"
      round=$(( round - 1 ))
      continue
    fi
    local killed_at
    killed_at=$(now_ms)
    kill9 "${names[$leader]}"
    wait "$bench_pid" || die "failover bench failed: $(tail -3 "$TMP/bench-failover.log")"
    # The window: the longest gap between successful writes that ends after the kill and
    # starts at most a second after it (writes already committed may still be answered
    # just after the kill; the gap starts at the last of them). The run's end counts as the
    # end of a last gap: if no write succeeded after it, the window is at least that long.
    echo "$killed_at" >"$RESULTS/$sys-failover-$round.killed_at"
    local w
    w=$(jq -r --argjson k "$killed_at" '. as $r
      | ($r.started_unix_ms + $r.elapsed_s * 1000 | floor) as $stop
      | ($r.last_success_unix_ms // $r.started_unix_ms) as $last
      | [(.gaps[] | {from: .from_unix_ms, to: .to_unix_ms, ms, open: false}),
         {from: $last, to: $stop, ms: ($stop - $last), open: true}]
      | map(select(.to >= $k and .from <= $k + 1000 and .ms > 10)) | max_by(.ms)
      | if . == null then 0 elif .open then "≥" + (.ms | floor | tostring) else .ms end' \
      "$RESULTS/$sys-failover-$round.json")
    windows+=("$w")
    log "$sys: round $round: writes unavailable for ${w} ms"
    if [[ $sys == helix ]]; then
      helix_start_member "$leader"
      wait_until 60 "helix to be whole again" helix_healthy "$leader"
    else
      etcd_start_member "$leader"
      wait_until 60 "etcd to be healthy again" etcd_healthy
    fi
    sleep 1 # let the restarted member settle before the next round picks a leader
  done
  echo "failover_ms='${windows[*]}'" >>"$env"
}

stop_system() {
  for n in "$@"; do kill -TERM "${PID[$n]}" 2>/dev/null || true; done
  for n in "$@"; do wait "${PID[$n]}" 2>/dev/null || true; done
}

summary() { # one system's figures, for runs that measure only one
  local sys=$1
  for r in seq c16 c64 soak; do
    jq -c --arg r "$r" '{run: $r, ok, errors, throughput: (.throughput | floor),
      p50: .latency_ms.p50, p99: .latency_ms.p99, p999: .latency_ms.p999, max: .latency_ms.max}' \
      "$RESULTS/$sys-$r.json"
  done
  [[ -f $RESULTS/$sys-propagation.json ]] && jq -c '{run: "propagation", ok, errors,
    p50: .propagation_ms.p50, p99: .propagation_ms.p99, max: .propagation_ms.max}' \
    "$RESULTS/$sys-propagation.json"
  cat "$RESULTS/$sys.env"
}

if [[ " $SYSTEMS " == *" helix "* ]]; then
  log "starting 3 helix nodes"
  setup_helix
  measure helix
  stop_system h0 h1 h2
  summary helix
fi
if [[ " $SYSTEMS " == *" etcd "* ]]; then
  command -v etcd >/dev/null || die "etcd is still missing after installing etcd-server"
  log "starting 3 etcd members ($ETCD_VERSION)"
  setup_etcd
  measure etcd
  stop_system e0 e1 e2
  summary etcd
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ " $SYSTEMS " != *" helix "* || " $SYSTEMS " != *" etcd "* ]]; then
  log "measured only: $SYSTEMS (the side-by-side report needs both)"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# The report

j() { jq -r "$2" "$RESULTS/$1.json"; }
f0() { awk -v v="$1" 'BEGIN {printf "%.0f", v}'; }
f1() { awk -v v="$1" 'BEGIN {printf "%.1f", v}'; }
f0s() { # "1.2 ≥3400" → "1 · ≥3400"
  local out="" v
  for v in $1; do
    if [[ $v == ≥* ]]; then out+="${out:+ · }$v"; else out+="${out:+ · }$(f0 "$v")"; fi
  done
  echo "$out"
}
f2() { awk -v v="$1" 'BEGIN {printf "%.2f", v}'; }
# ratio A B: how many times A is B, as "2.3×".
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f×", a / b; else print "–"}'; }
median() { tr ' ' '\n' | tr -d '≥' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
maxof() { tr ' ' '\n' | tr -d '≥' | grep -v '^$' | sort -g | tail -1; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }
mibs() { local out=""; for k in $1; do out+="${out:+ / }$(mib "$k")"; done; echo "$out"; }

# shellcheck disable=SC1090
H_env() { ( source "$RESULTS/helix.env"; eval "echo \"\$$1\"" ); }
# shellcheck disable=SC1090
E_env() { ( source "$RESULTS/etcd.env"; eval "echo \"\$$1\"" ); }

row_latency() { # label file field unit
  local h e
  h=$(j "helix-$2" ".latency_ms.$3") e=$(j "etcd-$2" ".latency_ms.$3")
  echo "| $1 | $(f2 "$h") ms | $(f2 "$e") ms | $(ratio "$h" "$e") |"
}
row_tput() {
  local h e
  h=$(j "helix-$2" .throughput) e=$(j "etcd-$2" .throughput)
  echo "| $1 | $(f0 "$h")/s | $(f0 "$e")/s | $(ratio "$h" "$e") |"
}
errors_of() { j "$1" .errors; }

H_FAIL=$(H_env failover_ms) E_FAIL=$(E_env failover_ms)
H_FAIL_MED=$(median <<<"$H_FAIL") E_FAIL_MED=$(median <<<"$E_FAIL")
H_FAIL_MAX=$(maxof <<<"$H_FAIL") E_FAIL_MAX=$(maxof <<<"$E_FAIL")
H_TERMS=$(H_env term_before)→$(H_env term_after) E_TERMS=$(E_env term_before)→$(E_env term_after)

TABLE=$(cat <<EOF
| measure (latency: lower is better; throughput: higher) | helix | etcd $ETCD_VERSION | helix / etcd |
| --- | --- | --- | --- |
| floor: fdatasync of a 4 KiB append p50 + 2 × loopback round trip p50 | $(f2 "$FSYNC_MS") + 2 × $(f2 "$RTT_MS") = $(f2 "$FLOOR_MS") ms | same machine | |
$(row_latency "1 client, p50 (${SEQ_COUNT} writes)" seq p50)
| 1 client, p50 as a multiple of the floor | $(ratio "$(j helix-seq .latency_ms.p50)" "$FLOOR_MS") | $(ratio "$(j etcd-seq .latency_ms.p50)" "$FLOOR_MS") | |
$(row_latency "1 client, p99" seq p99)
$(row_latency "1 client, p99.9" seq p999)
$(row_latency "1 client, max" seq max)
$(row_tput "16 clients, throughput (${LOAD_S} s)" c16)
$(row_latency "16 clients, p50" c16 p50)
$(row_latency "16 clients, p99" c16 p99)
$(row_latency "16 clients, p99.9" c16 p999)
$(row_tput "64 clients, throughput (${LOAD_S} s)" c64)
$(row_latency "64 clients, p50" c64 p50)
$(row_latency "64 clients, p99" c64 p99)
$(row_latency "64 clients, p99.9" c64 p999)
$(row_tput "64 clients, ${SOAK_S} s soak, throughput" soak)
$(row_latency "64 clients, ${SOAK_S} s soak, p99" soak p99)
| leader term before → after all load runs | $H_TERMS | $E_TERMS | |
| failover: write unavailability, median of $FAILOVER_ROUNDS | $(f1 "$H_FAIL_MED") ms | $(f1 "$E_FAIL_MED") ms | $(ratio "$H_FAIL_MED" "$E_FAIL_MED") |
| failover: worst of $FAILOVER_ROUNDS | $(f1 "$H_FAIL_MAX") ms | $(f1 "$E_FAIL_MAX") ms | $(ratio "$H_FAIL_MAX" "$E_FAIL_MAX") |
| failover: each round (ms; ≥: no write succeeded before the round ended) | $(f0s "$H_FAIL") | $(f0s "$E_FAIL") | |
| propagation to every member, p50 / p99 ($PROPAGATION_CHANGES changes) | $(f2 "$(j helix-propagation .propagation_ms.p50)") / $(f2 "$(j helix-propagation .propagation_ms.p99)") ms | – | |
| memory: RSS idle, per member (MiB) | $(mibs "$(H_env idle_rss_kib)") | $(mibs "$(E_env idle_rss_kib)") | |
| memory: RSS peak under load, per member (MiB) | $(mibs "$(H_env load_rss_kib)") | $(mibs "$(E_env load_rss_kib)") | |
| CPU per write, 3 members together, 16 / 64 clients | $(H_env cpu_us_per_write_c16) / $(H_env cpu_us_per_write_c64) µs | $(E_env cpu_us_per_write_c16) / $(E_env cpu_us_per_write_c64) µs | $(ratio "$(H_env cpu_us_per_write_c16)" "$(E_env cpu_us_per_write_c16)") |
| failed requests (1 / 16 / 64 clients / soak) | $(errors_of helix-seq) / $(errors_of helix-c16) / $(errors_of helix-c64) / $(errors_of helix-soak) | $(errors_of etcd-seq) / $(errors_of etcd-c16) / $(errors_of etcd-c64) / $(errors_of etcd-soak) | |
EOF
)

MACHINE="$NPROC × $CPU_MODEL, ${MEM_GIB} GiB RAM; data dirs on $DISK_DEV ($DISK_FS), an fdatasync of a 4 KiB append takes ${FSYNC_MS} ms (p50, \`helix bench --scenario floor\`); load average ${LOAD_BEFORE} before, ${LOAD_AFTER} after; $(date -u '+%Y-%m-%d %H:%M UTC')"
[[ $QUICK == 1 ]] && MACHINE+="; QUICK run (short, not comparable)"
RAFT_LINE=$(printf '%s' "${HELIX_RAFT_TOML:-default [raft] timing: heartbeat 50 ms, election 150-300 ms}" | tr '\n' ' ')

BLOCK=$(cat <<EOF
<!-- bench:begin (written by scripts/bench.sh; edit outside these markers) -->
Machine: $MACHINE.

helix $("$HELIX" --version | awk '{print $2}') (release build; \`$RAFT_LINE\`), etcd $ETCD_VERSION (Debian
\`etcd-server\`, default timing: heartbeat 100 ms, election 1000 ms). Each system: 3 members
on 127.0.0.x, fresh data dirs, measured alone. Client: \`helix bench\`, HTTP/1.1 keep-alive,
100-byte values, each write rewriting one of $KEYS models/keys (created first, untimed):
helix \`PUT /api/v1/helix-models/{id}\` (a model's description), etcd \`POST /v3/kv/put\`
(gateway). 1-client runs go to the leader; 16/64 clients spread over the three members;
failover clients (8) write to the two members that are not the leader, give up on a request
after 1 s and retry (a request to etcd that is pending when its leader dies can otherwise
wait for etcd's own 7 s request timeout).

$TABLE
<!-- bench:end -->
EOF
)

echo
echo "$TABLE"
echo
log "machine: $MACHINE"

if [[ $DOC != "-" ]]; then
  mkdir -p "$(dirname "$DOC")"
  if [[ -f $DOC ]] && grep -q '<!-- bench:begin' "$DOC" && grep -q '<!-- bench:end -->' "$DOC"; then
    awk -v block="$BLOCK" '
      /<!-- bench:begin/ {print block; skip=1; next}
      /<!-- bench:end -->/ {skip=0; next}
      !skip {print}' "$DOC" >"$TMP/doc.md"
    cat "$TMP/doc.md" >"$DOC"
  else
    printf '# Performance\n\n%s\n' "$BLOCK" >"$DOC"
  fi
  log "wrote $DOC"
fi
