#!/usr/bin/env bash
# Runs the gateway with its demo page in front of the local RabbitMQ:
#   sets up RabbitMQ (STOMP plugin, the `stompgate` broker user, FanoutDemandExchange),
#   builds the release binary and runs it in the foreground (Ctrl-C stops it).
# Then open the printed URL: the page holds no broker credentials; the gateway adds its own.
#
# Environment: STOMPGATE_LISTEN (default 127.0.0.1:8080), STOMPGATE_ADMIN_LISTEN
# (default 127.0.0.1:8081), STOMPGATE_STATE_DIR (default target/run-state).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

LISTEN=${STOMPGATE_LISTEN:-127.0.0.1:8080}
ADMIN_LISTEN=${STOMPGATE_ADMIN_LISTEN:-127.0.0.1:8081}
STATE_DIR=${STOMPGATE_STATE_DIR:-$REPO_ROOT/target/run-state}

setup_broker() {
  if [[ $(id -u) -eq 0 ]]; then
    scripts/setup-rabbitmq.sh
  elif port_open 61613; then
    info "not root: assuming the RabbitMQ on 127.0.0.1:61613 was set up by scripts/setup-rabbitmq.sh"
  else
    die "RabbitMQ STOMP is not on 127.0.0.1:61613; run scripts/setup-rabbitmq.sh as root first"
  fi
}

# Writes the broker passcode to a file only the current user can read; prints its path.
write_passcode_file() {
  local file=$STATE_DIR/upstream-passcode
  (umask 077 && mkdir -p "$STATE_DIR" && printf '%s\n' 'stompgate-secret' >"$file")
  chmod 600 "$file"
  printf '%s' "$file"
}

main() {
  setup_broker
  section "cargo build --release"
  cargo build --release --bin stompgate
  local passcode_file
  passcode_file=$(write_passcode_file)
  section "Demo page: http://$LISTEN/   (WebSocket endpoint ws://$LISTEN/ws, admin http://$ADMIN_LISTEN/)"
  info "open it in two tabs, subscribe to /exchange/FanoutDemandExchange in both, send from one"
  exec target/release/stompgate \
    --listen "$LISTEN" \
    --admin-listen "$ADMIN_LISTEN" \
    --upstream 127.0.0.1:61613 \
    --upstream-login stompgate \
    --upstream-passcode-file "$passcode_file" \
    --demo
}

main "$@"
