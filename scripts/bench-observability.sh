#!/usr/bin/env bash
# End-to-end cost of the per-frame observability hooks: the same gateway source built twice —
# as is ("on") and with the relay's metrics hooks (FrameTally::frame/heartbeat/flush and
# SessionRecorder::set_queued) short-circuited ("off") — each in front of the load tool's fake
# broker, under the same stompgate-load scenario, alternated REPS times. Prints the median
# delivered msg/s and the gateway's CPU µs per message for both, and the difference.
#
# Usage: scripts/bench-observability.sh [--reps N] [--secs S] [--pairs P]
# Builds into /tmp/stompgate-obs-{on,off}-target (release; ~5 min each the first time).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Benchmarks open sessions as fast as they can: no accept-rate limit unless asked for.
export STOMPGATE_ACCEPT_RATE="${STOMPGATE_ACCEPT_RATE:-0}"
cd "$REPO_ROOT"

REPS=5
SECS=5
PAIRS=4
while (($#)); do
  case $1 in
    --reps) REPS=$2; shift 2 ;;
    --secs) SECS=$2; shift 2 ;;
    --pairs) PAIRS=$2; shift 2 ;;
    *) die "unknown argument: $1" ;;
  esac
done
BUILD_TIMEOUT_SECS=1800
WORK=$(mktemp -d /tmp/bench-obs.XXXXXX)
TREE_ON=$WORK/src-on
TREE=$WORK/src-off
cleanup() {
  kill_started
  git worktree remove --force "$TREE_ON" 2>/dev/null || true
  git worktree remove --force "$TREE" 2>/dev/null || true
}
trap cleanup EXIT

section "build: hooks on and hooks off (both from HEAD; \"off\" has the hooks short-circuited)"
git worktree add -q --detach "$TREE_ON" HEAD
git worktree add -q --detach "$TREE" HEAD
# Keep the source identical but make every per-frame/per-batch hook return at once.
python3 - "$TREE" <<'PY'
import sys
root = sys.argv[1]
def patch(path, pairs):
    s = open(path).read()
    for sig, early in pairs:
        assert s.count(sig) == 1, sig
        s = s.replace(sig, sig + early)
    open(path, "w").write(s)
ret = "        if std::hint::black_box(true) { return; }\n"
patch(f"{root}/src/metrics/tally.rs", [
    ("    pub fn frame(&mut self, frame: &Frame, len: usize) {\n",
     "        if std::hint::black_box(true) { let _ = (frame, len); return; }\n"),
    ("    pub fn heartbeat(&mut self) {\n", ret),
    ("    pub fn flush(&mut self) {\n", ret),
])
patch(f"{root}/src/metrics/mod.rs", [
    ("    pub fn set_queued(&self, dir: Direction, bytes: usize) {\n",
     "        if std::hint::black_box(true) { let _ = (dir, bytes); return; }\n"),
])
PY
(cd "$TREE_ON" && export CARGO_TARGET_DIR=/tmp/stompgate-obs-on-target &&
  timeout "$BUILD_TIMEOUT_SECS" cargo build --release -q -p stompgate --bin stompgate &&
  timeout "$BUILD_TIMEOUT_SECS" cargo build --release -q -p stompgate-load)
(cd "$TREE" && timeout "$BUILD_TIMEOUT_SECS" env CARGO_TARGET_DIR=/tmp/stompgate-obs-off-target \
  cargo build --release -q -p stompgate --bin stompgate)
ON=/tmp/stompgate-obs-on-target/release/stompgate
OFF=/tmp/stompgate-obs-off-target/release/stompgate
LOAD=/tmp/stompgate-obs-on-target/release/stompgate-load


section "start: fake broker and the two gateways"
start_bg fake "$LOAD" fake-broker --lifetime-secs 1800
FAKE=$ADDR
GW=(--listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --upstream "$FAKE" --upstream-login load --upstream-passcode load)
start_bg on "$ON" "${GW[@]}"; ON_ADDR=$ADDR; ON_PID=$LASTPID
start_bg off "$OFF" "${GW[@]}"; OFF_ADDR=$ADDR; OFF_PID=$LASTPID

section "load: one-to-one, $PAIRS pairs, ${SECS}s, $REPS rounds alternating off/on"
for r in $(seq 1 "$REPS"); do
  for v in off on; do
    if [[ $v == on ]]; then addr=$ON_ADDR pid=$ON_PID; else addr=$OFF_ADDR pid=$OFF_PID; fi
    "$LOAD" run --url "ws://$addr/ws" --pid "$pid" --scenario one-to-one --pairs "$PAIRS" \
      --secs "$SECS" --json --label "$v" >>"$WORK/results.jsonl"
    info "round $r $v: $(tail -1 "$WORK/results.jsonl" | jq -r '"\(.delivered_per_sec|floor) msg/s cpu/msg=\(.process.cpu_us_per_msg)us"')"
  done
done

section "median of $REPS rounds"
python3 - "$WORK/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = {}
for v in ("off", "on"):
    rs = [r for r in rows if r["label"] == v]
    med[v] = (statistics.median(r["delivered_per_sec"] for r in rs),
              statistics.median(r["process"]["cpu_us_per_msg"] for r in rs))
    print(f"hooks {v:>3}: {med[v][0]:>10.0f} msg/s  {med[v][1]:.2f} gateway CPU us/msg")
print(f"throughput change with hooks: {(med['on'][0] / med['off'][0] - 1) * 100:+.1f} %")
print(f"gateway CPU per message with hooks: {(med['on'][1] / med['off'][1] - 1) * 100:+.1f} %")
PY
