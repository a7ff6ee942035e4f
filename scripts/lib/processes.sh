# Sourced by the scripts that start helix processes (fuzz-api.sh, bench-inference.sh): a temp
# dir for their data and logs, every process started stopped on any exit (TERM, then KILL
# after 10 s), the logs' tails shown when the script failed, and waiting with a deadline.
# The sourcing script defines log() and die() first, then calls
#   start_processes NAME KEEP     # TMP: a new temp dir, kept at exit when KEEP is 1
# and appends the pid of each process it starts to PIDS.

start_processes() {
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/helix-$1.XXXXXX")
  KEEP_TMP=$2
  PIDS=()
  trap stop_processes EXIT
  trap 'exit 130' INT TERM
}

stop_processes() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 100); do
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ $rc != 0 ]]; then
    for f in "$TMP"/*.log; do [[ -f $f ]] && { echo "--- tail of $f" >&2; tail -n 15 "$f" >&2; }; done
  fi
  if [[ $KEEP_TMP == 1 ]]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
  exit "$rc"
}

now_ms() { date +%s%3N; }

# wait_until SECONDS WHAT COMMAND...: until COMMAND succeeds, or die naming WHAT.
wait_until() {
  local limit=$1 what=$2; shift 2
  local deadline=$(( $(now_ms) + limit * 1000 ))
  until "$@" >/dev/null 2>&1; do
    (( $(now_ms) < deadline )) || die "timed out after ${limit}s waiting for $what"
    sleep 0.1
  done
}
