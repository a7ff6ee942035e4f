#!/usr/bin/env bash
# The OpenAI-compatible gateway against calling the vLLM test double directly: the same
# client (`helix bench --scenario inference`), the same double, in the same run, over three
# paths:
#   direct  the double's own port (127.0.0.1)
#   local   the gateway of the node that runs the replica (one hop, loopback to the double)
#   remote  the gateway of a node without a replica (two hops: gateway, then the owner's
#           peer port over mutual TLS, then loopback)
# Loads: 1 client non-streaming (latency added, p50), 64 streams (time to first chunk added,
# p99), 256 streams (throughput, and the gateway's memory per open stream). Prints a table
# and writes it into docs/performance.md (between the inference-bench markers).
#
#   scripts/bench-inference.sh                 # the full run (about three minutes)
#   BENCH_QUICK=1 scripts/bench-inference.sh   # a short run to try the script
#
# Environment: CARGO_TARGET_DIR, BENCH_DOC (default docs/performance.md; "-" = none),
# BENCH_SKIP_BUILD=1, BENCH_KEEP=1 (keep the temp dir), BENCH_TOKEN_MS (the double's delay
# per streamed token, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=${BENCH_QUICK:-0}
SECONDS_PER_RUN=10
[[ $QUICK == 1 ]] && SECONDS_PER_RUN=3
TOKEN_MS=${BENCH_TOKEN_MS:-2}
DOC=${BENCH_DOC:-$ROOT/docs/performance.md}
MODEL=bench/chat
IP1=127.0.0.81 IP2=127.0.0.82 API_PORT=18580 PEER_PORT=19580

log() { printf '[bench-inference %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
for tool in curl jq; do command -v "$tool" >/dev/null || die "needs $tool"; done

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
HELIX=$TARGET_DIR/release/helix
FAKE=$TARGET_DIR/release/examples/fake_vllm
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  log "cargo build --release (helix and the vLLM double)"
  cargo build --release --quiet --bin helix --example fake_vllm
fi
[[ -x $HELIX && -x $FAKE ]] || die "no release binaries in $TARGET_DIR/release"

# shellcheck source=lib/processes.sh
source "$ROOT/scripts/lib/processes.sh"
start_processes bench-inference "${BENCH_KEEP:-0}"
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# Two nodes: node 1 without GPUs (the remote gateway), node 2 running the replica.
"$HELIX" node start --data-dir "$TMP/n1" --api-addr "$IP1:$API_PORT" --peer-addr "$IP1:$PEER_PORT" \
  --gpus none >"$TMP/n1.log" 2>&1 &
PIDS+=("$!"); N1=$!
wait_until 60 "node 1" grep -q ready "$TMP/n1.log"
KEY=$(cat "$TMP/n1/admin.key")
HELIX_JOIN_TOKEN=$(cat "$TMP/n1/join.token") "$HELIX" node join "http://$IP1:$API_PORT" \
  --data-dir "$TMP/n2" --api-addr "$IP2:$API_PORT" --peer-addr "$IP2:$PEER_PORT" \
  --gpus 80GB --vllm-command "$FAKE" >"$TMP/n2.log" 2>&1 &
PIDS+=("$!"); N2=$!
wait_until 60 "node 2" grep -q ready "$TMP/n2.log"

api() { curl -sf -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' "$@"; }
api -X POST "http://$IP1:$API_PORT/api/v1/helix-models" -d "{\"id\": \"$MODEL\", \"memory\": \"10GB\",
  \"prewarm\": true, \"runtime_args\": [\"--fake-token-ms\", \"$TOKEN_MS\", \"--fake-max-running\", \"1000\"]}" >/dev/null
running_port() {
  api "http://$IP1:$API_PORT/api/v1/slots" |
    jq -e --arg m "$MODEL" '.[] | select(.model_id == $m and .state == "running") | .port'
}
wait_until 60 "the replica to run" running_port
PORT=$(running_port)
DIRECT=http://127.0.0.1:$PORT LOCAL=http://$IP2:$API_PORT REMOTE=http://$IP1:$API_PORT
# Gossip has reported the replica ready to node 1 once a request through it succeeds.
wait_until 30 "node 1 to route" api "$REMOTE/v1/chat/completions" -d "{\"model\": \"$MODEL\", \"messages\": []}"

RESULTS=$TMP/results
mkdir -p "$RESULTS"
# measure NAME PATH ARGS...: one `helix bench` run against PATH; JSON in $RESULTS/NAME.json.
measure() {
  local name=$1 path=$2; shift 2
  local endpoint key=()
  case $path in
    direct) endpoint=$DIRECT ;;
    local) endpoint=$LOCAL key=(--api-key "$KEY") ;;
    remote) endpoint=$REMOTE key=(--api-key "$KEY") ;;
  esac
  log "$name via $path"
  "$HELIX" --output json "${key[@]}" bench --scenario inference --endpoints "$endpoint" \
    --model "$MODEL" --duration "$SECONDS_PER_RUN" --timeout-ms 60000 "$@" >"$RESULTS/$name-$path.json"
}

for path in direct local remote; do
  measure single "$path" --clients 1 --max-tokens 1
done
for path in direct local remote; do
  measure streams64 "$path" --clients 64 --stream --max-tokens 16
done
# The gateway's memory per open stream: its RSS while 256 streams run, against idle.
IDLE_N1=$(rss_kib "$N1") IDLE_N2=$(rss_kib "$N2")
for path in direct local remote; do
  peak=0
  ( measure streams256 "$path" --clients 256 --stream --max-tokens 64 ) &
  runner=$!
  gateway_pid=$N2
  [[ $path == remote ]] && gateway_pid=$N1
  while kill -0 "$runner" 2>/dev/null; do
    rss=$(rss_kib "$gateway_pid"); (( rss > peak )) && peak=$rss
    sleep 0.25
  done
  wait "$runner"
  echo "$peak" >"$RESULTS/peak-rss-$path"
done

field() { jq -r "$2" "$RESULTS/$1.json"; }
ms() { printf '%.2f' "$1"; }
single_direct=$(field single-direct .latency_ms.p50)
ttft_direct=$(field streams64-direct .first_chunk_ms.p99)
rps_direct=$(field streams256-direct .requests_per_second)
table=$(
  echo "| path | non-streaming p50 (ms) | added | first chunk p99 at 64 streams (ms) | added | req/s at 256 streams | × direct | failed | gateway RSS per open stream |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for path in direct local remote; do
    s=$(field "single-$path" .latency_ms.p50)
    t=$(field "streams64-$path" .first_chunk_ms.p99)
    r=$(field "streams256-$path" .requests_per_second)
    failed=$(( $(field "single-$path" .failed) + $(field "streams64-$path" .failed) + $(field "streams256-$path" .failed) ))
    case $path in
      direct) per_stream="—" ;;
      local) per_stream="$(( ($(cat "$RESULTS/peak-rss-$path") - IDLE_N2) / 256 )) KiB" ;;
      remote) per_stream="$(( ($(cat "$RESULTS/peak-rss-$path") - IDLE_N1) / 256 )) KiB (node 1)" ;;
    esac
    printf '| %s | %s | %s | %s | %s | %.0f | %.2f | %s | %s |\n' "$path" "$(ms "$s")" \
      "$(ms "$(echo "$s - $single_direct" | bc -l)")" "$(ms "$t")" \
      "$(ms "$(echo "$t - $ttft_direct" | bc -l)")" "$r" "$(echo "$r / $rps_direct" | bc -l)" \
      "$failed" "$per_stream"
  done
)
echo "$table"

if [[ $DOC != - ]]; then
  {
    echo "<!-- inference-bench:start -->"
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores$([[ $QUICK == 1 ]] && echo ' (BENCH_QUICK: short runs)'),"
    echo "$SECONDS_PER_RUN s per run, the double answering with ${TOKEN_MS} ms per streamed token"
    echo "(16 tokens at 64 streams, 64 at 256), one token without streaming:"
    echo
    echo "$table"
    echo "<!-- inference-bench:end -->"
  } >"$TMP/section"
  if grep -q '<!-- inference-bench:start -->' "$DOC"; then
    awk -v section="$TMP/section" '
      /<!-- inference-bench:start -->/ { while ((getline line < section) > 0) print line; skip = 1; next }
      /<!-- inference-bench:end -->/ { skip = 0; next }
      !skip { print }' "$DOC" >"$TMP/doc" && cp "$TMP/doc" "$DOC"
  else
    { echo; echo "## The inference gateway (scripts/bench-inference.sh)"; echo; cat "$TMP/section"; } >>"$DOC"
  fi
  log "wrote the table into $DOC"
fi
