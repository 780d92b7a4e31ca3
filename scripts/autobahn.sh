#!/usr/bin/env bash
# Runs the Autobahn WebSocket conformance cases (PyPI `kosoku`) against examples/ws_echo.rs,
# which serves a plain echo on the gateway's own listener and WebSocket code.
#
#   scripts/autobahn.sh            # all cases but 12.* and 13.* (compression is not offered)
#   AUTOBAHN_CASES='9.*' scripts/autobahn.sh
#
# Fails when any case is FAILED (NON-STRICT and INFORMATIONAL results pass, as in Autobahn).
# Reports land in target/autobahn/. Only loopback traffic; the server is stopped on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

REPORT_DIR="$REPO_ROOT/target/autobahn"
KOSOKU_TIMEOUT_SECS=${KOSOKU_TIMEOUT_SECS:-900}

section "kosoku"
if ! command -v kosoku >/dev/null 2>&1; then
  info "installing kosoku from PyPI"
  python3 -m pip install --quiet kosoku
fi
command -v kosoku >/dev/null 2>&1 || die "kosoku is not on PATH after installing it"

section "building examples/ws_echo.rs"
cargo build --quiet --example ws_echo
ECHO_BIN="$REPO_ROOT/target/debug/examples/ws_echo"

section "starting the echo server"
ECHO_LOG=$(mktemp)
"$ECHO_BIN" --listen 127.0.0.1:0 >"$ECHO_LOG" 2>&1 &
ECHO_PID=$!
cleanup() {
  kill "$ECHO_PID" 2>/dev/null || true
  wait "$ECHO_PID" 2>/dev/null || true
  rm -f "$ECHO_LOG"
}
trap cleanup EXIT
ADDR=""
for _ in $(seq 1 100); do
  ADDR=$(awk '/^listening echo /{print $3; exit}' "$ECHO_LOG")
  [[ -n $ADDR ]] && break
  kill -0 "$ECHO_PID" 2>/dev/null || { cat "$ECHO_LOG" >&2; die "ws_echo exited early"; }
  sleep 0.1
done
[[ -n $ADDR ]] || die "ws_echo did not print its address within 10s"
info "ws_echo listening on $ADDR"

section "running the Autobahn cases"
rm -rf "$REPORT_DIR"
args=("$ADDR" -o "$REPORT_DIR")
if [[ -n ${AUTOBAHN_CASES:-} ]]; then
  args+=(-i "$AUTOBAHN_CASES")
fi
args+=(-x '12.*' -x '13.*')
status=0
timeout "$KOSOKU_TIMEOUT_SECS" kosoku "${args[@]}" || status=$?

section "summary"
python3 - "$REPORT_DIR/index.json" <<'EOF'
import collections, json, sys
try:
    index = json.load(open(sys.argv[1]))
except OSError as e:
    sys.exit(f"no report: {e}")
counts, failed = collections.Counter(), []
for cases in index.values():
    for case, r in cases.items():
        counts[r["behavior"]] += 1
        if "FAILED" in (r["behavior"], r["behaviorClose"]):
            failed.append(case)
        elif r["behavior"] != "OK":
            print(f"  {case}: {r['behavior']} (close {r['behaviorClose']})")
total = sum(counts.values())
print(f"autobahn: {total} cases: " + ", ".join(f"{n} {b}" for b, n in sorted(counts.items())))
if failed:
    sys.exit("FAILED cases: " + " ".join(sorted(failed)))
EOF
[[ $status -eq 0 ]] || die "kosoku exited with status $status"
