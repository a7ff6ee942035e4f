#!/usr/bin/env bash
# The chaos suite (tests/integration/chaos/): five helix nodes, each in a network namespace
# of its own on a bridge in the lab's namespace, with writers and readers on every node
# while faults come one at a time — a kill -9 of the leader every other time, and between
# them the leader isolated, 2/3 splits, one-way links, flapping links, packet loss, SIGSTOP of
# the leader and of a follower — then a token change under a partition and a heal. Every
# key's history is checked for linearizability, acknowledged writes lost are counted (must be
# 0), every runner must hold the last token and the watched model must never run twice.
#
#   scripts/chaos.sh                  # about 20 minutes of faults (release build), writes
#                                     # docs/reliability.md and target/chaos/
#   scripts/chaos.sh --short          # about 100 s (debug build), as CI runs it; no doc
#   scripts/chaos.sh --seconds 300 --seed 42
#
# Needs root (network namespaces), iproute2 and nftables: installed with apt-get when
# missing. Every namespace the run made is deleted when it ends, also after a failure or a
# kill (the lab's own Drop, and this script's exit trap for a test process that died).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_OF_FAULTS=1200
PROFILE=(--release)
TEST=chaos::suite::the_full_run
DOC=docs/reliability.md
SEED=
while (($#)); do
  case $1 in
    --short) SECONDS_OF_FAULTS=100 PROFILE=() TEST=chaos::suite::a_short_run_of_every_fault_keeps_every_promise DOC= ;;
    --seconds) SECONDS_OF_FAULTS=${2:?--seconds needs a number}; shift ;;
    --seed) SEED=${2:?--seed needs a number}; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "chaos: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[chaos %s] %s\n' "$(date +%T)" "$*" >&2; }
[[ $(id -u) == 0 ]] || { log "error: needs root (it makes network namespaces)"; exit 1; }
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || missing+=(nftables)
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# Namespaces of labs whose test process is gone.
remove_orphan_labs() {
  ip netns list | awk '/^hxlab-/ {print $1}' | while read -r ns; do
    owner=${ns#hxlab-}
    kill -0 "${owner%%-*}" 2>/dev/null || ip netns del "$ns" || true
  done
}
trap remove_orphan_labs EXIT

OUT=target/chaos
mkdir -p "$OUT"
export HELIX_CHAOS_SECONDS=$SECONDS_OF_FAULTS HELIX_CHAOS_REPORT=$OUT/report.md
[[ -n $SEED ]] && export HELIX_CHAOS_SEED=$SEED
rm -f "$OUT/report.md"
log "building and running $TEST (${SECONDS_OF_FAULTS} s of faults)"
ignored=()
[[ $TEST == *the_full_run ]] && ignored=(--ignored)
cargo test "${PROFILE[@]}" --test integration "$TEST" -- --exact "${ignored[@]}" --nocapture \
  2>&1 | grep --line-buffered -v '^\[node' | tee "$OUT/run.log" >&2
status=${PIPESTATUS[0]}
[[ -f $OUT/report.md ]] || { log "error: no report (the run failed before its end; see $OUT/run.log)"; exit 1; }

if [[ -n $DOC ]]; then
  {
    cat <<'HEAD'
# Reliability: the chaos suite

`scripts/chaos.sh` runs it (about 20 minutes; CI runs a short version of the same suite in
`cargo test`). Five helix nodes, each in a network namespace of its own (`ip netns`, a veth
pair to a bridge in the lab's own namespace, addresses private to the lab); faults are
nftables rules inside a node's namespace, so packets are dropped silently as by a cut cable.
This machine's kernel has no `sch_netem`, so injected delay is not among the faults; loss is
(nftables `numgen`). The suite lives in `tests/integration/chaos/`:

- `history.rs`: three writers, two linearizable readers and one stale reader over four keys
  (helix models; a write sets the description to a value unique to it), each client going
  through the nodes in turn, so writes reach the leader directly and forwarded. Every
  operation is recorded with invoke and complete times on one monotonic clock and its
  outcome: ok, failed (certainly not applied: refused connection, 4xx) or unknown (a
  timeout or 5xx on a write: it may have been applied).
- `linearizability.rs`: each key's history is checked for linearizability as a register
  (Wing & Gong / Lowe's search with memoisation; an unknown write may take effect at any
  time after its invoke, or never); stale reads are recorded but not checked. After the
  last heal every key is read once more, linearizably: an acknowledged write that this read
  neither sees nor sees overwritten is lost.
- `faults.rs`: a kill -9 of the leader every other fault (restarted once the others
  elected), and in between, in turn: the leader isolated, a 2/3 split, SIGSTOP of the leader,
  a one-way link from the leader, flapping links, a one-way link to the leader, 33% loss at
  the leader, SIGSTOP of a follower. Each is held 2–4.5 s (a pause 0.8–2 s), healed, and
  followed by a wait until every node agrees on one leader.
- At the end the system Hugging Face token changes while two nodes are cut off; after the
  heal every node must have applied it and its runner must open it. A model with one slot
  runs on the vLLM test double all along, and its processes are counted on every node every
  50 ms: it must never run on two nodes at once.

## The last full run

HEAD
    echo "Commit $(git rev-parse --short HEAD), $(date -u +%Y-%m-%d), $(nproc) cores, release build."
    echo
    cat "$OUT/report.md"
  } > "$DOC.tmp"
  mv "$DOC.tmp" "$DOC"
  log "wrote $DOC"
fi
log "history: $OUT/report.history.jsonl; output: $OUT/run.log"
exit "$status"
