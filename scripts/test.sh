#!/usr/bin/env bash
# The project's whole test run (what CI runs through .ci/run):
#   set-up of RabbitMQ (plus its STOMP TLS listener), ActiveMQ, Node deps and Chromium;
#   cargo fmt/clippy/build/test; the promtool check of /metrics; the Node tests under tests/js;
#   the RabbitMQ cluster failover test (scripts/setup-rabbitmq-cluster.sh, then
#   tests/cluster_failover.rs, then the cluster is stopped);
#   the WebSocket conformance run (scripts/autobahn.sh); the deployment run (release build,
#   scripts/setup-deploy.sh, scripts/test-deploy.sh). Optional steps run when their script
#   exists.
# Fails fast at the first failing section and prints a summary.
#
# Usage: scripts/test.sh [--no-setup]
#   --no-setup   skip the broker/Node/Chromium set-up (they are already done)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

export STOMPGATE_TEST_RABBITMQ=${STOMPGATE_TEST_RABBITMQ:-127.0.0.1:61613}
export STOMPGATE_TEST_ACTIVEMQ=${STOMPGATE_TEST_ACTIVEMQ:-127.0.0.1:61623}
export STOMPGATE_TEST_RABBITMQ_TLS=${STOMPGATE_TEST_RABBITMQ_TLS:-127.0.0.1:61614}
export STOMPGATE_BIN=${STOMPGATE_BIN:-$REPO_ROOT/target/debug/stompgate}
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

# Upper bounds per section, in seconds: a hung step fails instead of eating CI's time.
SETUP_TIMEOUT_SECS=900
CARGO_TIMEOUT_SECS=1500
NODE_TIMEOUT_SECS=1200
AUTOBAHN_TIMEOUT_SECS=600
DEPLOY_TIMEOUT_SECS=480
CLUSTER_TIMEOUT_SECS=300
NODE_TEST_TIMEOUT_MS=120000

SUMMARY=()
START_SECS=$SECONDS

print_summary() {
  printf '\n==> stompgate test summary (%ss total)\n' "$((SECONDS - START_SECS))" >&2
  local line
  for line in "${SUMMARY[@]}"; do printf '    %s\n' "$line" >&2; done
}

# run_section NAME TIMEOUT_SECS COMMAND...: runs one step under a header and a time bound.
run_section() {
  local name=$1 limit=$2 t0=$SECONDS rc=0
  shift 2
  section "$name"
  timeout --kill-after=10 "$limit" "$@" || rc=$?
  if (( rc != 0 )); then
    (( rc == 124 )) && info "timed out after ${limit}s"
    SUMMARY+=("FAIL  $name (exit $rc, $((SECONDS - t0))s)")
    print_summary
    printf '\nFAILED: %s\n' "$name" >&2
    exit 1
  fi
  SUMMARY+=("ok    $name ($((SECONDS - t0))s)")
}

# run_optional NAME TIMEOUT_SECS SCRIPT [ARGS...]: run_section when SCRIPT exists (other work
# streams add these), a "skip" line otherwise.
run_optional() {
  local name=$1 limit=$2 script=$3
  if [[ -x $script ]]; then
    run_section "$name" "$limit" "${@:3}"
  else
    SUMMARY+=("skip  $name ($script not present)")
  fi
}

run_setup() {
  run_section "setup: RabbitMQ" "$SETUP_TIMEOUT_SECS" scripts/setup-rabbitmq.sh
  run_optional "setup: RabbitMQ STOMP TLS listener" "$SETUP_TIMEOUT_SECS" scripts/setup-rabbitmq-tls.sh
  run_section "setup: ActiveMQ" "$SETUP_TIMEOUT_SECS" scripts/setup-activemq.sh
  run_section "setup: Node dependencies" "$SETUP_TIMEOUT_SECS" scripts/setup-node.sh
  run_section "setup: Chromium" "$SETUP_TIMEOUT_SECS" scripts/setup-chromium.sh
}

run_rust() {
  run_section "cargo fmt --check" 120 cargo fmt --all -- --check
  run_section "README layout table" 30 python3 scripts/check-layout.py
  run_section "cargo clippy" "$CARGO_TIMEOUT_SECS" cargo clippy --all-targets -- -D warnings
  run_section "cargo build (bins, examples)" "$CARGO_TIMEOUT_SECS" cargo build --bins --examples
  run_section "cargo test" "$CARGO_TIMEOUT_SECS" cargo test
  run_optional "metrics exposition (promtool)" "$CARGO_TIMEOUT_SECS" scripts/check-metrics.sh
}

run_node() {
  local tests=()
  shopt -s nullglob
  tests=(tests/js/*.test.mjs)
  shopt -u nullglob
  if (( ${#tests[@]} == 0 )); then
    SUMMARY+=("skip  node tests (none under tests/js)")
    return 0
  fi
  [[ -x $STOMPGATE_BIN ]] || die "STOMPGATE_BIN=$STOMPGATE_BIN is not an executable"
  run_section "node tests (${#tests[@]} files)" "$NODE_TIMEOUT_SECS" \
    node --test --test-concurrency=1 --test-timeout="$NODE_TEST_TIMEOUT_MS" "${tests[@]}"
}

# The RabbitMQ cluster failover test: three extra nodes started, tests/cluster_failover.rs,
# the nodes stopped (scripts/test-cluster.sh). Measured ~80 s cold on 2 cores; bounded at
# CLUSTER_TIMEOUT_SECS.
run_cluster() {
  run_section "RabbitMQ cluster failover (scripts/test-cluster.sh)" "$CLUSTER_TIMEOUT_SECS" \
    scripts/test-cluster.sh
}

run_conformance() {
  run_optional "WebSocket conformance (Autobahn)" "$AUTOBAHN_TIMEOUT_SECS" scripts/autobahn.sh
}

# The deployment, run (scripts/test-deploy.sh): the image packages the binary this release build
# makes, so its time is its own section.
run_deploy() {
  if [[ ! -x scripts/test-deploy.sh ]]; then
    SUMMARY+=("skip  deployment (scripts/test-deploy.sh not present)")
    return 0
  fi
  run_section "cargo build --release --locked (for the image)" "$CARGO_TIMEOUT_SECS" \
    cargo build --release --locked
  run_section "setup: container tools, base image, validators" "$SETUP_TIMEOUT_SECS" scripts/setup-deploy.sh
  run_section "deployment (image, manifests, kube play, scale-out)" "$DEPLOY_TIMEOUT_SECS" \
    scripts/test-deploy.sh --no-setup
}

main() {
  case "${1:-}" in
    --no-setup) SUMMARY+=("skip  setup (--no-setup)") ;;
    "") run_setup ;;
    *) die "usage: scripts/test.sh [--no-setup]" ;;
  esac
  run_rust
  run_node
  run_cluster
  run_conformance
  run_deploy
  print_summary
  printf '\nALL SECTIONS PASSED\n' >&2
}

main "$@"
