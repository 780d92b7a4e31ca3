#!/usr/bin/env bash
# TLS cost of the client listener, measured with stompgate-load against a release gateway that
# serves ws:// and wss:// side by side in front of the load tool's fake broker (or RabbitMQ):
#   1. handshakes: N connections at concurrency C, each closed right after, to three stages —
#      TLS only (TCP connect on ws://), + WebSocket upgrade, + STOMP CONNECT/CONNECTED — over
#      wss:// and over plain ws:// (REPS rounds, medians): handshakes/s, latency, gateway CPU µs
#      per handshake;
#   2. idle sessions over ws:// and wss:// (a fresh gateway each): gateway RSS per session, so the
#      per-TLS-session cost is the difference.
# Certificates: a throw-away CA and a `localhost`/127.0.0.1 server certificate made with openssl
# in a temp dir (EC P-256 by default, --key rsa for RSA 2048). Loopback only; every run bounded.
#
# Build: by default the committed HEAD, from a detached worktree (/tmp/bench-tls-src) into
# /tmp/stompgate-bench-tls-target (both kept between runs, so only what changed is rebuilt, and
# uncommitted edits in the shared tree do not leak into the figures; the first build takes
# several minutes); --working-tree builds and
# uses the working tree's target/release instead; --no-build uses whichever binaries exist.
#
# Usage: scripts/bench-tls.sh [--handshakes N] [--concurrency C] [--reps R] [--idle "2000 5000"]
#                             [--idle-secs S] [--key ec|rsa] [--rabbitmq] [--working-tree]
#                             [--no-build]
# Prints progress to stderr and a Markdown summary (for docs/PERFORMANCE.md) to stdout.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Benchmarks open sessions as fast as they can: no accept-rate limit unless asked for.
export STOMPGATE_ACCEPT_RATE="${STOMPGATE_ACCEPT_RATE:-0}"
cd "$REPO_ROOT"

HANDSHAKES=2000
CONC=50
REPS=3
IDLE="2000 5000"
IDLE_SECS=8
KEY=ec
RABBIT=0
BUILD=1
WORKING_TREE=0
while (($#)); do
  case $1 in
    --handshakes) HANDSHAKES=$2; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --idle) IDLE=$2; shift 2 ;;
    --idle-secs) IDLE_SECS=$2; shift 2 ;;
    --key) KEY=$2; shift 2 ;;
    --rabbitmq) RABBIT=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --working-tree) WORKING_TREE=1; shift ;;
    *) die "unknown argument: $1" ;;
  esac
done
[[ $KEY == ec || $KEY == rsa ]] || die "--key must be ec or rsa"
# Time limit of one handshake run (it normally ends much sooner, when N are done).
RUN_LIMIT_SECS=120
BUILD_TIMEOUT_SECS=1800
if (( WORKING_TREE )); then
  SRC=$REPO_ROOT
  TARGET=$REPO_ROOT/target
  REV="working tree at $(git rev-parse --short HEAD)$(git status --porcelain -- src tools | grep -q . && echo ' (with uncommitted edits)')"
else
  SRC=/tmp/bench-tls-src
  TARGET=/tmp/stompgate-bench-tls-target
  REV="commit $(git rev-parse --short HEAD)"
fi
LOAD=$TARGET/release/stompgate-load
GW=$TARGET/release/stompgate
WORK=$(mktemp -d /tmp/bench-tls.XXXXXX)
RESULTS=$WORK/results.jsonl
cleanup() {
  kill_started
  rm -rf "$WORK"
}
trap cleanup EXIT

if (( BUILD )); then
  section "build (release, $REV)"
  if [[ $SRC != "$REPO_ROOT" ]]; then
    if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
      git -C "$SRC" checkout -q --detach "$(git rev-parse HEAD)"
    else
      rm -rf "$SRC"
      git worktree add -q --detach "$SRC" HEAD
    fi
  fi
  # Two invocations: `--bin stompgate` would also filter the load tool's package.
  (cd "$SRC" && export CARGO_TARGET_DIR=$TARGET &&
    timeout "$BUILD_TIMEOUT_SECS" cargo build --release -q -p stompgate --bin stompgate >&2 &&
    timeout "$BUILD_TIMEOUT_SECS" cargo build --release -q -p stompgate-load >&2)
fi
[[ -x $GW && -x $LOAD ]] || die "release binaries missing (run without --no-build)"
# What was measured: the worktree's commit (with --no-build, whatever it was last built from).
[[ $SRC == "$REPO_ROOT" ]] || REV="commit $(git -C "$SRC" rev-parse --short HEAD)"

section "certificates ($KEY, throw-away, in $WORK)"
newkey() { # newkey FILE
  if [[ $KEY == rsa ]]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
  else
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
  fi
}
newkey "$WORK/ca.key"
openssl req -x509 -new -key "$WORK/ca.key" -days 2 -subj "/CN=bench-tls CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
  -out "$WORK/ca.pem" 2>/dev/null
newkey "$WORK/server.key"
openssl req -new -key "$WORK/server.key" -subj "/CN=localhost" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$WORK/ext.cnf"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
  -CAcreateserial -days 2 -extfile "$WORK/ext.cnf" -out "$WORK/server.pem" 2>/dev/null
info "$(openssl x509 -in "$WORK/server.pem" -noout -subject -ext subjectAltName | tr '\n' ' ')"

# The gateway holds 2 fds per session; the load tool 1.
ulimit -n "$(ulimit -Hn)"

# Wait for the TLS listener (the plain one is printed first).
START_BG_ROLES='client-tls\|fake-broker'
listening() { grep -m1 "^listening $2 " "$WORK/$1.out" | awk '{print $3}'; }

if (( RABBIT )); then
  port_open 61613 || die "RabbitMQ STOMP is not listening on 61613 (scripts/setup-rabbitmq.sh)"
  UPSTREAM=(--upstream 127.0.0.1:61613 --upstream-login stompgate --upstream-passcode stompgate-secret)
  BROKER=rabbitmq
else
  start_bg fake "$LOAD" fake-broker --lifetime-secs 1800
  UPSTREAM=(--upstream "$(listening fake fake-broker)" --upstream-login load --upstream-passcode load)
  BROKER=fake-broker
fi
GW_ARGS=(--listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 --tls-cert "$WORK/server.pem"
  --tls-key "$WORK/server.key" --admin-listen 127.0.0.1:0 "${UPSTREAM[@]}")
TLS_ARGS=(--ca "$WORK/ca.pem" --server-name localhost)

# run LABEL URL [args...]: one load run, its JSON line appended to RESULTS.
run() {
  local label=$1 url=$2; shift 2
  local line
  line=$(timeout $((RUN_LIMIT_SECS + 60)) "$LOAD" run --url "$url" "${TLS_ARGS[@]}" --json \
    --label "$label" "$@") || { info "run failed: $label"; return 0; }
  printf '%s\n' "$line" >>"$RESULTS"
  info "$label: $(jq -r 'if .handshakes then "\(.handshakes.ok)/\(.handshakes.requested) ok, \(.handshakes.per_sec|floor)/s, p50=\(.handshakes.latency.p50_us)us p99=\(.handshakes.latency.p99_us)us, cpu=\(.handshakes.cpu_us_per_handshake // "-" | tostring | .[0:6])us/hs" else "\(.sessions) sessions, \(.process.rss_per_session_kib // "-" | tostring | .[0:6]) KiB/session" end + ", errors=\(.errors) \(.error_samples[0] // "")"' <<<"$line")"
}

UPTIME_START=$(uptime)
START=$(date -u '+%Y-%m-%d %H:%M UTC')
section "handshakes: $HANDSHAKES at concurrency $CONC, each closed; $REPS rounds (gateway -> $BROKER)"
start_bg gw "$GW" "${GW_ARGS[@]}"
GW_PID=$LASTPID
PLAIN=$(listening gw client)
TLS=$(listening gw client-tls)
info "gateway pid $GW_PID: ws://$PLAIN  wss://$TLS"
for _ in $(seq 1 "$REPS"); do
  for stage in tls ws stomp; do
    for scheme in ws wss; do
      if [[ $scheme == wss ]]; then addr=$TLS; else addr=$PLAIN; fi
      run "hs $scheme $stage" "$scheme://$addr/ws" --pid "$GW_PID" --scenario handshake \
        --handshakes "$HANDSHAKES" --connect-concurrency "$CONC" --stage "$stage" --close-each \
        --secs "$RUN_LIMIT_SECS"
    done
  done
done
kill "$GW_PID" 2>/dev/null || true
wait "$GW_PID" 2>/dev/null || true

section "idle sessions over ws and wss (a fresh gateway each): $IDLE"
SPAWN="$GW ${GW_ARGS[*]}"
for n in $IDLE; do
  for scheme in ws wss; do
    run "idle $scheme $n" "$scheme://{addr}/ws" --scenario idle --connections "$n" \
      --connect-concurrency "$CONC" --secs "$IDLE_SECS" --spawn "$SPAWN" --spawn-log "$WORK/idle.err"
  done
done
UPTIME_END=$(uptime)

section "summary"
python3 - "$RESULTS" "$START" "$UPTIME_START" "$UPTIME_END" "$HANDSHAKES" "$CONC" "$REPS" "$KEY" \
  "$BROKER" "$REV" <<'PY'
import json, statistics as st, sys
path, start, up0, up1, n, conc, reps, key, broker, rev = sys.argv[1:11]
rows = [json.loads(l) for l in open(path)]
def med(xs):
    xs = [x for x in xs if x is not None]
    return st.median(xs) if xs else None
def f(x, fmt="{:,.0f}"):
    return "—" if x is None else fmt.format(x)
print(f"Run {start}; {rev}, release; gateway → {broker}; server key {key}; {n} handshakes at concurrency {conc}, "
      f"each closed at once; {reps} rounds, medians.  ")
print(f"Load at start: `{up0.strip()}`  ")
print(f"Load at end: `{up1.strip()}`\n")
print("| stage | transport | handshakes/s | latency p50 / p99 / max µs | gateway CPU µs/handshake | failed |")
print("|---|---|---|---|---|---|")
cpu = {}
names = {"tls": "TCP (+ TLS)", "ws": "+ WebSocket upgrade", "stomp": "+ STOMP CONNECT"}
for stage in ("tls", "ws", "stomp"):
    for scheme in ("ws", "wss"):
        rs = [r["handshakes"] for r in rows if r["label"] == f"hs {scheme} {stage}"]
        if not rs:
            continue
        c = med(r["cpu_us_per_handshake"] for r in rs)
        cpu[(scheme, stage)] = c
        lat = "/".join(f(med(r["latency"][k] for r in rs)) for k in ("p50_us", "p99_us", "max_us"))
        failed = sum(r["failed"] + r["not_started"] for r in rs)
        print(f"| {names[stage]} | {scheme} | {f(med(r['per_sec'] for r in rs))} | {lat} | "
              f"{f(c, '{:.0f}')} | {failed} |")
print()
print("| stage | TLS adds, gateway CPU µs per connection |")
print("|---|---|")
for stage in ("tls", "ws", "stomp"):
    a, b = cpu.get(("wss", stage)), cpu.get(("ws", stage))
    print(f"| {names[stage]} | {f(None if a is None or b is None else a - b, '{:+.0f}')} |")
print()
print("| idle sessions | ws KiB/session | wss KiB/session | TLS adds KiB/session | errors |")
print("|---|---|---|---|---|")
idle = {}
for r in rows:
    if r["label"].startswith("idle "):
        _, scheme, cnt = r["label"].split()
        idle.setdefault(int(cnt), {})[scheme] = r
for cnt in sorted(idle):
    per = {s: (idle[cnt][s].get("process") or {}).get("rss_per_session_kib") for s in idle[cnt]}
    sess = {s: idle[cnt][s]["sessions"] for s in idle[cnt]}
    errs = sum(idle[cnt][s]["errors"] for s in idle[cnt])
    a, b = per.get("wss"), per.get("ws")
    note = "" if all(v == cnt for v in sess.values()) else f" (sessions {sess})"
    print(f"| {cnt:,}{note} | {f(b, '{:.2f}')} | {f(a, '{:.2f}')} | "
          f"{f(None if a is None or b is None else a - b, '{:+.2f}')} | {errs} |")
PY
