#!/usr/bin/env bash
# Schema-driven fuzzing of a node's whole API: starts a 3-node cluster on loopback (each
# node with a declared 80 GB GPU and the vLLM test double), checks the OpenAPI document it
# serves against the OpenAPI 3.1 schema (openapi-spec-validator), then lets schemathesis
# send generated requests, valid and invalid, to every operation in it with the admin key.
# Fails (non-zero) on any answer that is a 5xx, or whose status, content type, headers or
# body the document does not describe, on an operation that works without the key the
# document asks for, and on a created resource that cannot be read or a deleted one that can.
#
#   scripts/fuzz-api.sh                  # about 4 minutes of fuzzing
#   scripts/fuzz-api.sh --short          # at most 90 s of fuzzing (CI), as FUZZ_SHORT=1
#   scripts/fuzz-api.sh --seconds 900 --max-examples 500
#
# schemathesis and openapi-spec-validator are installed from PyPI into a virtualenv under
# the build dir (target/fuzz-venv) on the first run. Settings it reads besides the command
# line: scripts/fuzz-api.toml (what is excluded, and why). Environment: CARGO_TARGET_DIR,
# FUZZ_SKIP_BUILD=1, FUZZ_KEEP=1 (keep the temp dir with the nodes' logs and the report),
# FUZZ_CHECKS (schemathesis checks, comma-separated; `all` for every one it has).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECONDS_BUDGET=240
MAX_EXAMPLES=200
[[ ${FUZZ_SHORT:-0} == 1 ]] && SECONDS_BUDGET=90 MAX_EXAMPLES=40
while (($#)); do
  case $1 in
    --short) SECONDS_BUDGET=90 MAX_EXAMPLES=40 ;;
    --seconds) SECONDS_BUDGET=${2:?--seconds needs a number}; shift ;;
    --max-examples) MAX_EXAMPLES=${2:?--max-examples needs a number}; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "fuzz-api: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[fuzz-api %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
command -v curl >/dev/null || die "needs curl"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=$TARGET_DIR/fuzz-venv
if [[ ! -x $VENV/bin/schemathesis || ! -x $VENV/bin/openapi-spec-validator ]]; then
  log "installing schemathesis and openapi-spec-validator into $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    'schemathesis==4.32.5' 'openapi-spec-validator==0.9.0'
fi

HELIX=$TARGET_DIR/debug/helix
FAKE=$TARGET_DIR/debug/examples/fake_vllm
if [[ ${FUZZ_SKIP_BUILD:-0} != 1 ]]; then
  log "cargo build (helix and the vLLM double)"
  cargo build --quiet --bin helix --example fake_vllm
fi
[[ -x $HELIX && -x $FAKE ]] || die "no binaries in $TARGET_DIR/debug"

# shellcheck source=lib/processes.sh
source "$ROOT/scripts/lib/processes.sh"
start_processes fuzz-api "${FUZZ_KEEP:-0}"

# node K: its own loopback address and, for the replicas it launches, its own port range.
API_PORT=18680 PEER_PORT=19680
start_node() {
  local k=$1; shift
  local ip=127.0.0.$((70 + k))
  printf '[runner]\nport_range = "%d-%d"\n' $((21000 + k * 100)) $((21099 + k * 100)) >"$TMP/n$k.toml"
  "$HELIX" node "$@" --data-dir "$TMP/n$k" --api-addr "$ip:$API_PORT" --peer-addr "$ip:$PEER_PORT" \
    --config "$TMP/n$k.toml" --gpus 80GB --vllm-command "$FAKE" >"$TMP/n$k.log" 2>&1 &
  PIDS+=("$!")
  wait_until 120 "node $k to be ready" grep -q ready "$TMP/n$k.log"
}
BASE=http://127.0.0.71:$API_PORT
log "starting 3 nodes in $TMP"
start_node 1 start
KEY=$(cat "$TMP/n1/admin.key")
export HELIX_JOIN_TOKEN
HELIX_JOIN_TOKEN=$(cat "$TMP/n1/join.token")
start_node 2 join "$BASE"
start_node 3 join "$BASE"
members() {
  curl -sf -H "Authorization: Bearer $KEY" "$BASE/api/v1/cluster/status" | grep -o '"peer_addr"' | wc -l
}
wait_until 60 "3 members" test "$(members)" = 3
# The model the document's inference examples name, running, so they reach a replica.
MODEL=Qwen/Qwen2.5-7B-Instruct
curl -sf -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -o /dev/null \
  "$BASE/api/v1/helix-models" -d "{\"id\": \"$MODEL\", \"memory\": \"10GB\", \"prewarm\": true}" ||
  die "creating $MODEL failed"
running() {
  curl -sf -H "Authorization: Bearer $KEY" "$BASE/api/v1/slots" | grep -q '"state":"running"'
}
wait_until 60 "$MODEL to run" running

curl -sf "$BASE/api/v1/openapi.json" -o "$TMP/openapi.json" || die "GET /api/v1/openapi.json failed"
log "validating the document against the OpenAPI 3.1 schema"
"$VENV/bin/openapi-spec-validator" "$TMP/openapi.json"

# No 5xx; status, content type, headers and body as documented; a key is required where the
# document says so; a created resource can be read, a deleted one is gone.
CHECKS=${FUZZ_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,ignored_auth,use_after_free,ensure_resource_availability}
log "fuzzing for at most ${SECONDS_BUDGET}s, at most $MAX_EXAMPLES examples per operation"
started=$(now_ms)
set +o errexit
# From the temp dir: schemathesis keeps a cache of what it found in its working directory.
# Hypothesis's health checks judge the generator's speed on a loaded machine, not the API.
# One worker: Python 3.11's parser is not thread-safe, and Hypothesis parses lambdas' source
# ("AST constructor recursion depth mismatch" otherwise, now and then).
(cd "$TMP" && exec "$VENV/bin/schemathesis" --no-color --config-file "$ROOT/scripts/fuzz-api.toml" \
  run "$BASE/api/v1/openapi.json" \
  -H "Authorization: Bearer $KEY" \
  --checks "$CHECKS" \
  --max-time "$SECONDS_BUDGET" --max-examples "$MAX_EXAMPLES" --request-timeout 30 --workers 1 \
  --suppress-health-check all --generation-database none --report junit --report-dir "$TMP/report" \
  --output-sanitize true) | tee "$TMP/schemathesis.out"
rc=${PIPESTATUS[0]}
set -o errexit
log "schemathesis took $(( ($(now_ms) - started) / 1000 ))s and exited $rc"
exit "$rc"
