#!/usr/bin/env bash
# Concurrent idle STOMP sessions through stompgate, past one process's descriptor limit.
#
# A gateway needs two descriptors per session (browser socket + broker socket), so under a hard
# `nofile` limit of 20,000 one process holds at most ~9,900 sessions. This script holds more by
# running K gateways on ONE client port (`--reuse-port`: the kernel spreads new connections over
# them), each with its own fake broker (one descriptor per upstream session), and several
# `stompgate-load run --scenario idle` processes (one descriptor per client connection), each
# dialling from its own loopback source addresses so no (source, destination) pair needs more
# than the ~28k ephemeral ports. All sessions are CONNECTED before the hold starts, then held
# with heart-beats (10 s both ways) while the gateways' VmRSS, CPU, descriptors and
# `stompgate_connections_open` gauges are read; SIGUSR1 ends the load processes' hold.
#
# Two points: the single-process one (one gateway, `--single` sessions, 9,900 by default) and the
# many-process one (`--gateways` gateways, `--sessions` sessions). Prints a markdown block and
# writes it to `--out FILE`.
#
# Usage: scripts/bench-sessions.sh [--out FILE] [--sessions 50000] [--gateways 6]
#          [--worker-threads 2] [--single 9900] [--hold-secs 25] [--per-loader 10000]
#          [--connect-concurrency 200] [--no-build] [--skip-single]
#
# The RSS figure is the high-water mark the opening leaves behind, not only what idle sessions
# keep: memory freed after the handshakes mostly stays with the process. So it grows with the
# handshakes in flight at once (`--connect-concurrency` per load process, several processes).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Benchmarks open sessions as fast as they can: no accept-rate limit unless asked for.
export STOMPGATE_ACCEPT_RATE="${STOMPGATE_ACCEPT_RATE:-0}"
cd "$REPO_ROOT"
ulimit -n "$(ulimit -Hn)"

OUT=""
SESSIONS=50000
GATEWAYS=6
WORKERS=2
CONCURRENCY=200
SINGLE=9900
HOLD_SECS=25
PER_LOADER=10000
BUILD=1
ARGS="$*"
while (($#)); do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --sessions) SESSIONS=$2; shift 2 ;;
    --gateways) GATEWAYS=$2; shift 2 ;;
    --worker-threads) WORKERS=$2; shift 2 ;;
    --single) SINGLE=$2; shift 2 ;;
    --hold-secs) HOLD_SECS=$2; shift 2 ;;
    --per-loader) PER_LOADER=$2; shift 2 ;;
    --connect-concurrency) CONCURRENCY=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --skip-single) SINGLE=0; shift ;;
    *) die "unknown argument: $1" ;;
  esac
done
((HOLD_SECS >= 5 && HOLD_SECS <= 60)) || die "--hold-secs must be in 5..60"

# Every wait below is bounded; the numbers add up to well under the 3-minute budget.
OPEN_LIMIT_SECS=60        # all sessions of one point CONNECTED within this, or the point fails
REPORT_LIMIT_SECS=20      # load processes print their report within this after SIGUSR1
PROCESS_LIFETIME_SECS=240 # gateways, brokers and load processes end by themselves after this
SETTLE_SECS=2             # after the last session opens, before memory is read
FD_LIMIT=$(ulimit -n)
GW=target/release/stompgate
LOAD=target/release/stompgate-load

WORK=$(mktemp -d /tmp/bench-sessions.XXXXXX)
trap kill_started EXIT
trap 'exit 130' INT TERM

now() { printf '%s' "$EPOCHREALTIME"; }
# Seconds elapsed since $1 (an EPOCHREALTIME reading).
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# utime + stime of $1 in clock ticks (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() {
  local stat rest
  stat=$(<"/proc/$1/stat")
  rest=${stat##*) }
  awk '{ print $12 + $13 }' <<<"$rest"
}
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }
# Sum of the samples of metric family $2 in the /metrics text of admin address $1.
metric() {
  curl -s --max-time 2 "http://$1/metrics" \
    | awk -v m="$2" 'index($0, m "{") == 1 || index($0, m " ") == 1 { s += $NF } END { print s + 0 }'
}
sum_over() { # sum_over FUNCTION ARG...: the sum of FUNCTION over the args
  local f=$1 s=0 a
  shift
  for a in "$@"; do s=$((s + $("$f" "$a"))); done
  echo "$s"
}

check_memory() {
  local need_kib=$(( (SESSIONS * 64) + 512 * 1024 )) avail_kib
  avail_kib=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
  info "memory available: $((avail_kib / 1024)) MiB; this run needs about $((need_kib / 1024)) MiB"
  ((avail_kib >= need_kib)) || die "not enough free memory for $SESSIONS sessions"
}

# Dies unless $2 sessions spread over $1 gateways leave each under the descriptor limit. With
# several gateways the split is random (a hash of the 4-tuple): allow four standard deviations.
check_fds() {
  local k=$1 n=$2 per
  per=$(awk -v k="$k" -v n="$n" 'BEGIN { m = n / k; print int(m + (k > 1 ? 4 * sqrt(m) : 0) + 1) }')
  ((2 * per + 64 <= FD_LIMIT)) \
    || die "$n sessions over $k gateways: up to $per per gateway needs $((2 * per + 64)) fds > $FD_LIMIT"
}

# start_point NAME K: K fake brokers and K gateways on one client port. Sets PORT, GPIDS, ADMINS,
# BPIDS.
start_point() {
  local name=$1 k=$2 i listen=127.0.0.1:0 out
  GPIDS=() ADMINS=() BPIDS=()
  for i in $(seq 1 "$k"); do
    start_bg "$name-broker$i" timeout "$PROCESS_LIFETIME_SECS" "$LOAD" fake-broker \
      --lifetime-secs "$PROCESS_LIFETIME_SECS"
    BPIDS+=("$(child_of "$LASTPID")")
    START_BG_ROLES=client start_bg "$name-gw$i" timeout -k 5 "$PROCESS_LIFETIME_SECS" "$GW" \
      --listen "$listen" --reuse-port --admin-listen 127.0.0.1:0 --upstream "$ADDR" \
      --upstream-login load --upstream-passcode load --worker-threads "$WORKERS" \
      --shutdown-grace 1s
    listen=$ADDR
    out=$WORK/$name-gw$i.out
    GPIDS+=("$(child_of "$LASTPID")")
    ADMINS+=("$(awk '/^listening admin / { print $3; exit }' "$out")")
  done
  PORT=${listen##*:}
  info "$k gateway(s) on 127.0.0.1:$PORT (pids ${GPIDS[*]}), $k fake broker(s)"
}

# The pid of the command that `timeout` (pid $1) runs.
child_of() {
  local c=""
  for _ in $(seq 1 50); do
    c=$(cat "/proc/$1/task/$1/children" 2>/dev/null | awk '{ print $1 }')
    [[ -n $c ]] && break
    sleep 0.02
  done
  [[ -n $c ]] || die "no child under timeout pid $1"
  echo "$c"
}

stop_pids() {
  local p
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
}

# measure NAME K N SOURCE_BASE: one point. Appends a JSON line to $WORK/points.jsonl.
measure() {
  local name=$1 k=$2 n=$3 base=$4 loaders i p j
  check_fds "$k" "$n"
  section "$name: $n idle sessions through $k gateway(s), ${HOLD_SECS}s hold"
  start_point "$name" "$k"
  sleep 1
  rss0=$(sum_over rss_kib "${GPIDS[@]}")
  loaders=$(( (n + PER_LOADER - 1) / PER_LOADER ))
  local LPIDS=() each=$(( (n + loaders - 1) / loaders )) left=$n t0
  t0=$(now)
  for j in $(seq 0 $((loaders - 1))); do
    local c=$((left < each ? left : each)) s1=$((base + 2 * j)) s2=$((base + 2 * j + 1))
    left=$((left - c))
    timeout -k 5 "$PROCESS_LIFETIME_SECS" "$LOAD" run --scenario idle --connections "$c" \
      --secs $((OPEN_LIMIT_SECS + HOLD_SECS + 30)) --url "ws://127.0.0.1:$PORT/ws" \
      --sources "127.0.0.$s1,127.0.0.$s2" --connect-concurrency "$CONCURRENCY" --json \
      --label "$name-loader$j" >"$WORK/$name-load$j.json" 2>"$WORK/$name-load$j.err" &
    PIDS+=("$!")
    LPIDS+=("$(child_of "$!")")
  done
  info "$loaders load process(es) of up to $each sessions, sources 127.0.0.$base.. (2 each)"
  # All CONNECTED: every load process has printed its `opened` line.
  local waited=0 opened_all=""
  while :; do
    local done_n=0
    for j in $(seq 0 $((loaders - 1))); do
      grep -q '^opened ' "$WORK/$name-load$j.err" 2>/dev/null && done_n=$((done_n + 1))
    done
    ((done_n == loaders)) && { opened_all=$(since "$t0"); break; }
    for p in "${LPIDS[@]}"; do
      kill -0 "$p" 2>/dev/null || die "$name: a load process ended early: $(tail -2 "$WORK"/$name-load*.err)"
    done
    ((waited >= OPEN_LIMIT_SECS * 10)) && die "$name: sessions not all open within ${OPEN_LIMIT_SECS}s"
    sleep 0.1
    waited=$((waited + 1))
  done
  local failed
  failed=$(cat "$WORK"/$name-load*.err | awk '/^opened / { gsub(/\(/, "", $4); s += $4 } END { print s + 0 }')
  info "all load processes report their sessions CONNECTED after ${opened_all}s ($failed failed)"
  sleep "$SETTLE_SECS"
  # Held: memory, descriptors and the gauges at the start of the window, CPU over it.
  local rss1 cpu1 t1 fds=() open1=() hb1 lrss brss
  rss1=$(sum_over rss_kib "${GPIDS[@]}")
  cpu1=$(sum_over cpu_ticks "${GPIDS[@]}")
  hb1=0
  for i in "${!GPIDS[@]}"; do
    fds+=("$(fd_count "${GPIDS[$i]}")")
    open1+=("$(metric "${ADMINS[$i]}" stompgate_connections_open)")
    hb1=$((hb1 + $(metric "${ADMINS[$i]}" stompgate_heartbeats_total)))
  done
  lrss=$(sum_over rss_kib "${LPIDS[@]}")
  brss=$(sum_over rss_kib "${BPIDS[@]}")
  t1=$(now)
  info "held: gateway RSS $((rss0 / 1024)) -> $((rss1 / 1024)) MiB; sessions per gateway ${open1[*]}; fds ${fds[*]}"
  sleep $((HOLD_SECS - SETTLE_SECS))
  local rss2 cpu2 wall open2=() hb2=0 refused=0 closed=0 timeouts=0
  cpu2=$(sum_over cpu_ticks "${GPIDS[@]}")
  wall=$(since "$t1")
  rss2=$(sum_over rss_kib "${GPIDS[@]}")
  for i in "${!GPIDS[@]}"; do
    open2+=("$(metric "${ADMINS[$i]}" stompgate_connections_open)")
    hb2=$((hb2 + $(metric "${ADMINS[$i]}" stompgate_heartbeats_total)))
    refused=$((refused + $(metric "${ADMINS[$i]}" stompgate_sessions_refused_total)))
    closed=$((closed + $(metric "${ADMINS[$i]}" stompgate_connections_closed_total)))
    timeouts=$((timeouts + $(metric "${ADMINS[$i]}" stompgate_heartbeat_timeouts_total)))
  done
  info "end of hold: sessions per gateway ${open2[*]}"
  for p in "${LPIDS[@]}"; do kill -USR1 "$p"; done
  local held_by_load=0 errors=0 beats=0
  for j in $(seq 0 $((loaders - 1))); do
    local w=0
    while kill -0 "${LPIDS[$j]}" 2>/dev/null && ((w < REPORT_LIMIT_SECS * 10)); do sleep 0.1; w=$((w + 1)); done
    local line
    line=$(tail -1 "$WORK/$name-load$j.json")
    [[ -n $line ]] || die "$name: load process $j printed no report: $(tail -2 "$WORK/$name-load$j.err")"
    held_by_load=$((held_by_load + $(jq -r .sessions <<<"$line")))
    errors=$((errors + $(jq -r .errors <<<"$line")))
    beats=$((beats + $(jq -r .heartbeats <<<"$line")))
  done
  local open_secs
  open_secs=$(cat "$WORK"/$name-load*.json | jq -s 'map(.open_secs) | max')
  stop_pids "${GPIDS[@]}" "${BPIDS[@]}"
  jq -n -c --arg name "$name" --argjson k "$k" --argjson workers "$WORKERS" --argjson want "$n" \
    --argjson conc "$CONCURRENCY" \
    --argjson loaders "$loaders" --argjson held_by_load "$held_by_load" \
    --argjson failed "$failed" --argjson errors "$errors" --argjson beats "$beats" \
    --argjson refused "$refused" --argjson closed "$closed" --argjson timeouts "$timeouts" \
    --argjson rss0 "$rss0" --argjson rss1 "$rss1" --argjson rss2 "$rss2" \
    --argjson cpu_ticks "$((cpu2 - cpu1))" --argjson wall "$wall" \
    --argjson open_wall "$opened_all" --argjson open_secs "$open_secs" \
    --argjson hb "$((hb2 - hb1))" --argjson lrss "$lrss" --argjson brss "$brss" \
    --argjson open1 "[$(IFS=,; echo "${open1[*]}")]" --argjson open2 "[$(IFS=,; echo "${open2[*]}")]" \
    --argjson fds "[$(IFS=,; echo "${fds[*]}")]" \
    '$ARGS.named' >>"$WORK/points.jsonl"
}

check_memory
if ((BUILD)); then
  section "build (release)"
  timeout 1800 cargo build --release -q -p stompgate --bin stompgate -p stompgate-load
fi
[[ -x $GW && -x $LOAD ]] || die "build $GW and $LOAD first"
START=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_START=$(uptime)
T_START=$(now)
# Source addresses: the two points use disjoint ones, so TIME_WAIT left by one cannot crowd the
# other (or the next run's) ports.
((SINGLE > 0)) && measure "single" 1 "$SINGLE" 100
measure "reuseport" "$GATEWAYS" "$SESSIONS" 2
LOAD_END=$(uptime)
TOTAL=$(since "$T_START")

COMMIT=$(git rev-parse --short HEAD)
DIRTY=$(git status --porcelain --untracked-files=no | wc -l)
((DIRTY > 0)) && COMMIT="$COMMIT (+ uncommitted changes in $DIRTY tracked files of the tree)"
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MACHINE="$CPU x $(nproc), $(uname -srm), $(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
BLOCK=$(python3 - "$WORK/points.jsonl" "$MACHINE" "$START" "$COMMIT" "$LOAD_START" "$LOAD_END" \
  "scripts/bench-sessions.sh${ARGS:+ $ARGS}" "$FD_LIMIT" "$TOTAL" <<'PY'
import json, sys
path, machine, start, commit, up0, up1, cmd, fds, total = sys.argv[1:10]
rows = [json.loads(l) for l in open(path)]
out = [
    "### Concurrent idle sessions (scripts/bench-sessions.sh)",
    "",
    f"Machine: {machine}. Run {start}, commit {commit}.  ",
    f"Command: `{cmd}` ({float(total):.0f} s in all; descriptor limit per process {fds}).  ",
    f"Load at start: `{up0.strip()}`  ",
    f"Load at end: `{up1.strip()}`",
    "",
    "| point | gateways × worker threads | sessions CONNECTED and held (asked) | sessions per gateway, min–max | fds per gateway, max | time to open all | gateway RSS, sum: before → held (end) | KiB/session | gateway CPU while held | heart-beats relayed/s | errors |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]
def mib(k): return f"{k / 1024:,.1f} MiB"
for r in rows:
    held = min(sum(r["open1"]), sum(r["open2"]), r["held_by_load"])
    per = (r["rss1"] - r["rss0"]) / max(held, 1)
    errs = r["errors"] + r["failed"] + r["refused"] + r["closed"] + r["timeouts"] + (r["want"] - held)
    cores = r["cpu_ticks"] / 100 / max(r["wall"], 1e-6)
    out.append(
        f"| {r['name']} | {r['k']} × {r['workers']} | {held:,} ({r['want']:,}) "
        f"| {min(r['open1']):,}–{max(r['open1']):,} | {max(r['fds']):,} "
        f"| {r['open_secs']:.1f} s ({held / max(r['open_secs'], 1e-6):,.0f}/s; {r['loaders']} load process{'es' if r['loaders'] > 1 else ''} × {r['conc']} at once) "
        f"| {mib(r['rss0'])} → {mib(r['rss1'])} ({mib(r['rss2'])}) | **{per:.2f}** "
        f"| {cores * 100:.1f} % of a core ({r['wall']:.0f} s) | {r['hb'] / max(r['wall'], 1e-6):,.0f} | {errs} |"
    )
out.append("")
for r in rows:
    out.append(
        f"- {r['name']}: sessions per gateway {', '.join(f'{x:,}' for x in r['open1'])} "
        f"(end of hold: {', '.join(f'{x:,}' for x in r['open2'])}); descriptors {', '.join(f'{x:,}' for x in r['fds'])}; "
        f"heart-beats received by the load processes {r['beats']:,}; "
        f"load processes {mib(r['lrss'])} RSS, fake brokers {mib(r['brss'])}. "
        f"Errors = load-tool errors {r['errors']} + failed opens {r['failed']} + refused {r['refused']} "
        f"+ closed while held {r['closed']} + heart-beat timeouts {r['timeouts']} + sessions missing {r['want'] - min(sum(r['open1']), sum(r['open2']), r['held_by_load'])}."
    )
print("\n".join(out))
PY
)
printf '%s\n' "$BLOCK"
if [[ -n $OUT ]]; then
  printf '%s\n' "$BLOCK" >"$OUT"
  info "written to $OUT"
fi
