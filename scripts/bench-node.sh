#!/usr/bin/env bash
# The issue's own throughput load with NODE clients (tests/js/bench/node-load.mjs: @stomp/stompjs 7,
# 4 publisher/subscriber pairs, 100 B bodies, as fast as a window of 1,000 undelivered messages
# per pair allows, one worker thread per client), back to back against
#   (a) RabbitMQ Web-STOMP            ws://127.0.0.1:15674/ws (the client offers permessage-deflate,
#                                     as `ws` and browsers do by default, and Web-STOMP takes it)
#   (a') the same without the offer   (--no-deflate: what Web-STOMP does uncompressed)
#   (b) stompgate (release) -> RabbitMQ STOMP 61613 (declines deflate, so same traffic as a')
#   (c) direct TCP STOMP to 61613     (the same stompjs Client over a TCP adapter)
# REPS times (median and range reported), then one run of each row with all clients in one
# Node thread, and writes a markdown table between the bench-node markers in docs/PERFORMANCE.md.
#
# Usage: scripts/bench-node.sh [--reps N] [--secs S] [--no-write] [--no-build] [--out FILE]
# Needs: RabbitMQ with STOMP (61613, user stompgate/stompgate-secret) and Web-STOMP (15674),
# Node >= 20 with tests/js/node_modules installed (scripts/setup-node.sh).
# Total time: about (REPS + 1) x 4 x (SECS + 3) s, ≈ 2.5 min with --reps 3 --secs 5.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
# Benchmarks open sessions as fast as they can: no accept-rate limit unless asked for.
export STOMPGATE_ACCEPT_RATE="${STOMPGATE_ACCEPT_RATE:-0}"
cd "$REPO_ROOT"

REPS=3
SECS=5
WRITE=1
BUILD=1
OUT=""
while (($#)); do
  case $1 in
    --reps) REPS=$2; shift 2 ;;
    --secs) SECS=$2; shift 2 ;;
    --no-write) WRITE=0; shift ;;
    --no-build) BUILD=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    *) die "unknown argument: $1" ;;
  esac
done

RABBIT_LOGIN=stompgate
RABBIT_PASS=stompgate-secret
GW=target/release/stompgate
LOADJS=tests/js/bench/node-load.mjs
WORK=$(mktemp -d /tmp/bench-node.XXXXXX)
RESULTS=$WORK/results.jsonl
trap kill_started EXIT

section "build (release)"
(( BUILD )) && cargo build --release -p stompgate --bin stompgate >&2
[[ -x $GW ]] || die "$GW is missing (cargo build --release -p stompgate --bin stompgate)"
[[ -d tests/js/node_modules/@stomp/stompjs ]] || die "tests/js/node_modules is missing (scripts/setup-node.sh)"
port_open 61613 || die "RabbitMQ STOMP is not listening on 61613 (scripts/setup-rabbitmq.sh)"
port_open 15674 || die "RabbitMQ Web-STOMP is not listening on 15674"
RABBIT_PID=$(pgrep -xo beam.smp || true)
[[ -n $RABBIT_PID ]] || info "no beam.smp process found: RabbitMQ's CPU is not recorded"

section "start: stompgate -> RabbitMQ"
start_bg gw-rabbit "$GW" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --upstream 127.0.0.1:61613 \
  --upstream-login "$RABBIT_LOGIN" --upstream-passcode "$RABBIT_PASS"
GW_ADDR=$ADDR GW_PID=$LASTPID
GW_COMMIT=$(git rev-parse --short HEAD)
[[ -z $(git status --porcelain -- src Cargo.toml Cargo.lock) ]] || GW_COMMIT="$GW_COMMIT + uncommitted changes"
info "gateway $GW_ADDR (pid $GW_PID), built from $GW_COMMIT"

# load ROW THREADS URL [node-load args...]: one run, one JSON line into RESULTS.
load() {
  local row=$1 threads=$2 url=$3; shift 3
  local watch=() line
  [[ -n $RABBIT_PID ]] && watch=(--watch "rabbitmq=$RABBIT_PID")
  line=$(node "$LOADJS" --url "$url" --secs "$SECS" --login "$RABBIT_LOGIN" --passcode "$RABBIT_PASS" \
    --json --label "$row" "$@" "${watch[@]}") || { info "run failed: $row"; return 0; }
  printf '{"row":"%s","threads":"%s","run":%s}\n' "$row" "$threads" "$line" >>"$RESULTS"
  info "$(jq -r '"\(.label)  \(.delivered_per_sec|floor) msg/s  p50=\(.latency.p50_us)us p99=\(.latency.p99_us)us  errors=\(.errors) lost=\(.lost)  cores: " + ([.cpu | to_entries[] | "\(.key) \(.value.cores*100|floor/100)"] | join(", "))' <<<"$line")"
}

# rows THREADS [node-load args...]: the four targets, back to back.
rows() {
  local threads=$1; shift
  load "a webstomp" "$threads" ws://127.0.0.1:15674/ws "$@"
  load "a' webstomp, no deflate" "$threads" ws://127.0.0.1:15674/ws --no-deflate "$@"
  load "b stompgate->rabbit" "$threads" "ws://$GW_ADDR/ws" --watch "gateway=$GW_PID" "$@"
  load "c tcp->rabbit" "$threads" tcp://127.0.0.1:61613 "$@"
}

START=$(date -u '+%Y-%m-%d %H:%M UTC')
UPTIME_START=$(uptime)
for rep in $(seq 1 "$REPS"); do
  section "rep $rep/$REPS: 4 pairs, 100 B, window 1000, a worker thread per client"
  rows workers
done
section "one run each: all 8 clients in one Node thread"
rows single --in-process
UPTIME_END=$(uptime)

section "summary"
python3 - "$RESULTS" "$START" "$UPTIME_START" "$UPTIME_END" "$REPS" "$SECS" "$GW_COMMIT" >"$WORK/table.md" <<'PY'
import json, statistics, sys
path, start, up0, up1, reps, secs, commit = sys.argv[1:8]
rows = [json.loads(l) for l in open(path)]
names = ["a webstomp", "a' webstomp, no deflate", "b stompgate->rabbit", "c tcp->rabbit"]
def runs(row, threads): return [r["run"] for r in rows if r["row"] == row and r["threads"] == threads]
def vals(row, threads, f): return [v for v in (f(r) for r in runs(row, threads)) if v is not None]
def med(xs): return statistics.median(xs) if xs else None
def fmt(x, spec="{:,.0f}"): return "—" if x is None else spec.format(x)
def rng(xs, spec="{:,.0f}"): return "—" if not xs else f"{spec.format(min(xs))}–{spec.format(max(xs))}"
tput = lambda r: r["delivered_per_sec"]
cores = lambda name: lambda r: (r["cpu"].get(name) or {}).get("cores")
gw_us = lambda r: (r["cpu"].get("gateway") or {}).get("us_per_msg")
out = [f"Run {start}, gateway built from {commit}; {reps} reps of {secs} s per row (after 1 s of "
       "warm-up), rows back to back; median, with the range over the reps.  ",
       f"Load at start: `{up0.strip()}`  ", f"Load at end: `{up1.strip()}`\n",
       "| row | ws extensions | delivered msg/s: median (range) | p50 / p99 latency ms | gateway CPU µs/msg | "
       "CPU cores busy: gateway / RabbitMQ / Node clients / whole host | errors+lost |",
       "|---|---|---|---|---|---|---|"]
ext = lambda n: " ".join(sorted({r.get("ws_extensions") or "none" for r in runs(n, "workers")})) if not n.startswith("c ") else "(TCP)"
for n in names:
    if not runs(n, "workers"): continue
    t = vals(n, "workers", tput)
    lat = " / ".join(fmt(med(vals(n, "workers", lambda r, k=k: r["latency"][k] / 1000)), "{:,.1f}")
                     for k in ("p50_us", "p99_us"))
    busy = " / ".join(fmt(med(vals(n, "workers", cores(c))), "{:.2f}") for c in ("gateway", "rabbitmq", "clients", "host"))
    errs = sum(r["errors"] + r["lost"] for r in runs(n, "workers"))
    out.append(f"| {n} | {ext(n)} | {fmt(med(t))} ({rng(t)}) | {lat} | {fmt(med(vals(n, 'workers', gw_us)), '{:.1f}')} | {busy} | {errs} |")
single = [n for n in names if runs(n, "single")]
if single:
    out.append("\nSame load, one run each with all 8 clients in ONE Node thread (`--in-process`):\n")
    out.append("| row | delivered msg/s | p50 / p99 latency ms | CPU cores busy: gateway / RabbitMQ / Node clients / whole host | errors+lost |")
    out.append("|---|---|---|---|---|")
    for n in single:
        r = runs(n, "single")[0]
        busy = " / ".join(fmt(cores(c)(r), "{:.2f}") for c in ("gateway", "rabbitmq", "clients", "host"))
        out.append(f"| {n} | {fmt(tput(r))} | {r['latency']['p50_us']/1000:,.1f} / {r['latency']['p99_us']/1000:,.1f} | {busy} | {r['errors'] + r['lost']} |")
a, a2, b, c = (med(vals(n, "workers", tput)) for n in names)
def ratio(x, y): return None if not x or not y else x / y
def verdict(r, limit): return "—" if r is None else ("**met**" if r >= limit else "**not met**")
# Ratios of the same rep's runs, to show how much of the median ratio is run-to-run noise.
def rep_ratios(x, y):
    xs, ys = vals(x, "workers", tput), vals(y, "workers", tput)
    return [p / q for p, q in zip(xs, ys) if q]
r1, r2, r3, r4 = ratio(b, a), ratio(b, c), ratio(c, a), ratio(b, a2)
out.append("\nTargets (issue 8; this run, medians; per-rep ratios in brackets):\n")
out.append("| target | measured | verdict |")
out.append("|---|---|---|")
out.append(f"| stompgate→RabbitMQ ≥ 1.5× Web-STOMP throughput | {fmt(r1, '{:.2f}')}× ({rng(rep_ratios(names[2], names[0]), '{:.2f}')}) | {verdict(r1, 1.5)} |")
out.append(f"| stompgate→RabbitMQ ≥ 0.75× direct TCP throughput | {fmt(r2, '{:.2f}')}× ({rng(rep_ratios(names[2], names[3]), '{:.2f}')}) | {verdict(r2, 0.75)} |")
out.append(f"| (not a target) stompgate→RabbitMQ vs Web-STOMP without deflate | {fmt(r4, '{:.2f}')}× ({rng(rep_ratios(names[2], names[1]), '{:.2f}')}) | — |")
out.append(f"| (the issue's premise) direct TCP ≈ 2.2× Web-STOMP | {fmt(r3, '{:.2f}')}× ({rng(rep_ratios(names[3], names[0]), '{:.2f}')}) | — |")
print("\n".join(out))
PY
cat "$WORK/table.md"
[[ -n $OUT ]] && cp "$WORK/table.md" "$OUT"

if (( WRITE )); then
  DOC=docs/PERFORMANCE.md
  python3 - "$DOC" "$WORK/table.md" "$(uname -srm)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) x $(nproc)" "$(node --version)" "$REPS" "$SECS" <<'PY'
import sys, re
doc, table, kernel, cpu, node, reps, secs = sys.argv[1:8]
body = open(table).read()
block = (f"<!-- bench-node:begin (generated by scripts/bench-node.sh; reruns replace this block) -->\n"
         f"Machine: {cpu}, {kernel}, Node {node}. Command: `scripts/bench-node.sh --reps {reps} --secs {secs}`.\n\n"
         f"{body}\n<!-- bench-node:end -->")
text = open(doc).read()
pat = re.compile(r"<!-- bench-node:begin.*?<!-- bench-node:end -->", re.S)
if not pat.search(text):
    sys.exit(f"{doc} has no bench-node markers: add the 'Node clients' section first")
open(doc, "w").write(pat.sub(lambda _: block, text))
PY
  info "table written to $DOC"
fi
