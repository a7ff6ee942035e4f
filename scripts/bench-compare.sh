#!/usr/bin/env bash
# Two helix builds side by side in the same run: BASE (a git revision, default the last commit
# before mutual TLS between nodes) and the working tree. Each gets a fresh 3-node cluster on
# loopback and the same writes from the same client (the working tree's `helix bench`): one
# client to the leader, then 16 and 64 clients over the three members. The builds alternate
# for ROUNDS rounds so that a change in the machine's load hits both alike; the table gives
# the median of the rounds and the ratio HEAD / BASE.
#
#   scripts/bench-compare.sh                  # BASE=b3a1314 (before issue 10), 3 rounds
#   BASE=<rev> ROUNDS=5 scripts/bench-compare.sh
#
# Environment: BASE, BASE_BIN (a release binary of BASE already built: skips that build),
# ROUNDS, BENCH_SEQ (writes of the 1-client run, default 2000), BENCH_LOAD_S
# (seconds of each loaded run, default 10), BENCH_KEEP=1 keeps the temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BASE=${BASE:-b3a1314}
ROUNDS=${ROUNDS:-3}
SEQ=${BENCH_SEQ:-2000}
LOAD_S=${BENCH_LOAD_S:-10}
IPS=(127.0.0.81 127.0.0.82 127.0.0.83)
API_PORT=18580 PEER_PORT=19580

log() { printf '[compare %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
for tool in curl jq awk git; do command -v "$tool" >/dev/null || die "need $tool"; done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/helix-compare.XXXXXX")
declare -A PID=()
cleanup() {
  for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  git -C "$ROOT" worktree remove --force "$TMP/base-src" 2>/dev/null || true
}
trap cleanup EXIT

log "building HEAD (working tree) and BASE ($BASE), release"
cargo build --release --quiet
HEAD_BIN=$ROOT/target/release/helix
if [[ -z ${BASE_BIN:-} ]]; then
  git -C "$ROOT" worktree add --detach --quiet "$TMP/base-src" "$BASE"
  BASE_TARGET=$ROOT/target/compare-base
  (cd "$TMP/base-src" && CARGO_TARGET_DIR=$BASE_TARGET cargo build --release --quiet)
  BASE_BIN=$BASE_TARGET/release/helix
fi

url() { echo "http://${IPS[$1]}:$API_PORT"; }
ready() { grep -qsE 'node [0-9]+ ready' "$1"; }
wait_for() { # seconds what command...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@"; do ((SECONDS < deadline)) || die "timed out waiting for $what"; sleep 0.2; done
}
start_cluster() { # binary dir
  local bin=$1 dir=$2
  mkdir -p "$dir"
  for i in 0 1 2; do
    local args=(--data-dir "$dir/n$i" --api-addr "${IPS[$i]}:$API_PORT"
      --peer-addr "${IPS[$i]}:$PEER_PORT" --gpus none)
    if ((i == 0)); then
      "$bin" node start "${args[@]}" >"$dir/n$i.log" 2>&1 &
    else
      HELIX_JOIN_TOKEN=$(cat "$dir/n0/join.token") "$bin" node join "$(url 0)" "${args[@]}" \
        >"$dir/n$i.log" 2>&1 &
    fi
    PID[n$i]=$!
    wait_for 90 "node $i ready" ready "$dir/n$i.log"
  done
  KEY=$(cat "$dir/n0/admin.key")
  wait_for 60 "three voters" voters3
}
voters3() {
  curl -sf -m 2 -H "Authorization: Bearer $KEY" "$(url 0)/api/v1/cluster/status" \
    | jq -e '.leader_id != null and .quorum.reachable_voters == 3' >/dev/null
}
leader_url() {
  curl -sf -m 2 -H "Authorization: Bearer $KEY" "$(url 0)/api/v1/cluster/status" \
    | jq -r '.leader_id as $l | .members[] | select(.id == $l) | "http://" + .api_addr'
}
stop_cluster() {
  for n in n0 n1 n2; do kill -TERM "${PID[$n]}" 2>/dev/null || true; done
  for n in n0 n1 n2; do wait "${PID[$n]}" 2>/dev/null || true; unset "PID[$n]"; done
}
bench() { # out args...
  local out=$1; shift
  "$HEAD_BIN" bench --output json --target helix --api-key "$KEY" --mode update --keys 1000 \
    --prefix bench "$@" >"$out" 2>"$out.log" || die "helix bench failed: $(tail -3 "$out.log")"
}
measure() { # name round
  local name=$1 round=$2 dir=$TMP/$1-$2 bin
  [[ $name == base ]] && bin=$BASE_BIN || bin=$HEAD_BIN
  log "$name round $round: $("$bin" --version)"
  start_cluster "$bin" "$dir"
  local all
  all="$(url 0),$(url 1),$(url 2)"
  bench "$dir/seq.json" --endpoints "$(leader_url)" --clients 1 --count "$SEQ"
  bench "$dir/c16.json" --endpoints "$all" --clients 16 --duration "$LOAD_S"
  bench "$dir/c64.json" --endpoints "$all" --clients 64 --duration "$LOAD_S"
  stop_cluster
}

for round in $(seq 1 "$ROUNDS"); do
  measure base "$round"
  measure head "$round"
done

# median NAME FILE JQ: the median over the rounds.
median() {
  for round in $(seq 1 "$ROUNDS"); do jq -r "$3" "$TMP/$1-$round/$2.json"; done \
    | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}
row() { # label file jq unit
  local b h
  b=$(median base "$2" "$3") h=$(median head "$2" "$3")
  awk -v l="$1" -v b="$b" -v h="$h" -v u="$4" \
    'BEGIN {printf "| %s | %.2f%s | %.2f%s | %.3f |\n", l, b, u, h, u, (b > 0 ? h / b : 0)}'
}
echo
echo "BASE $BASE vs HEAD $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo '+changes'), median of $ROUNDS alternating rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| measure | BASE | HEAD | HEAD / BASE |"
echo "| --- | --- | --- | --- |"
row "1 client, p50 ($SEQ writes)" seq .latency_ms.p50 " ms"
row "1 client, p99" seq .latency_ms.p99 " ms"
row "16 clients, throughput (${LOAD_S} s)" c16 .throughput "/s"
row "16 clients, p99" c16 .latency_ms.p99 " ms"
row "64 clients, throughput (${LOAD_S} s)" c64 .throughput "/s"
row "64 clients, p99" c64 .latency_ms.p99 " ms"
