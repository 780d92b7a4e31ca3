#!/usr/bin/env bash
# Fan-out side by side: RabbitMQ's Web-STOMP, stompgate -> RabbitMQ STOMP with shared
# subscriptions off, and with them on (`--fanout-destination`), each with the load tool's
# `fan-out` scenario (1 publisher -> S subscribers on one /topic/ destination, 100 B bodies).
# Prints, per run, the deliveries/s and the broker's CPU seconds (beam.smp utime+stime from
# /proc) spent during it.
#
# Usage: scripts/bench-fanout.sh [SUBSCRIBERS (200)] [MESSAGES (500)] [REPS (3)]
# Needs: release builds (cargo build --release -p stompgate -p stompgate-load), RabbitMQ with
# STOMP (61613) and Web-STOMP (15674), the `stompgate` broker user (scripts/setup-rabbitmq.sh).
# Keep SUBSCRIBERS well below RabbitMQ's open-file limit (1024 on a default node): every session
# still holds its own broker connection, and a node out of descriptors loses internal processes.
set -euo pipefail
cd "$(dirname "$0")/.."
SUBS=${1:-200}
MSGS=${2:-500}
REPS=${3:-3}
LOAD=target/release/stompgate-load
GW="target/release/stompgate --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --upstream 127.0.0.1:61613 --upstream-login stompgate --upstream-passcode stompgate-secret"
BEAM=$(pgrep -o -x beam.smp)
TICK=$(getconf CLK_TCK)
broker_cpu() { awk '{print $14 + $15}' "/proc/$BEAM/stat"; }

run() {
  local label=$1; shift
  local before after
  before=$(broker_cpu)
  local json
  json=$(timeout 180 "$LOAD" run "$@" --scenario fan-out --subscribers "$SUBS" --messages "$MSGS" \
    --connect-concurrency 50 --label "$label" --json | grep '^{')
  after=$(broker_cpu)
  python3 -c '
import json, sys
d = json.loads(sys.argv[1])
print("%-9s delivered %6d/%d  %8.0f deliveries/s  p50 %5.0f ms  broker CPU %5.2f s" % (
    d["label"], d["delivered"], d["sent"] * int(sys.argv[2]), d["delivered_per_sec"],
    d["latency"]["p50_us"] / 1000, (int(sys.argv[4]) - int(sys.argv[3])) / int(sys.argv[5])))
' "$json" "$SUBS" "$before" "$after" "$TICK"
}

for _ in $(seq "$REPS"); do
  run webstomp --url ws://127.0.0.1:15674/ws --login stompgate --passcode stompgate-secret
  run off --url 'ws://{addr}/ws' --spawn "$GW"
  run on --url 'ws://{addr}/ws' --spawn "$GW --fanout-destination /topic/stompgate-load*"
done
