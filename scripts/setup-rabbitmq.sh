#!/usr/bin/env bash
# Installs (if missing) and starts a local RabbitMQ node with the STOMP, Web-STOMP and
# management plugins, then creates the fixtures the tests use. Idempotent; run as root.
#
# Fixtures (all on 127.0.0.1):
#   user stompgate/stompgate-secret     full permissions on vhost /
#   vhosts tenant-a, tenant-b
#   user svc-a/svc-a-secret             full on tenant-a only
#   user svc-b/svc-b-secret             full on tenant-b only
#   user svc-readonly/svc-readonly-secret  on /: configure ^$, write ^$, read .*
#   exchange FanoutDemandExchange       fanout, durable, on /
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PLUGINS=(rabbitmq_stomp rabbitmq_web_stomp rabbitmq_management)
MGMT="http://127.0.0.1:15672/api"
MGMT_AUTH="guest:guest"
STARTUP_TIMEOUT_SECS=120
PORT_TIMEOUT_SECS=90

node_running() {
  timeout 30 rabbitmqctl status >/dev/null 2>&1
}

# Raises the soft fd limit for a node we start ourselves (BROKERS.md: 1024 caps STOMP at ~1,000).
raise_fd_limit() {
  local conf=/etc/rabbitmq/rabbitmq-env.conf
  mkdir -p /etc/rabbitmq
  if ! grep -qs 'ulimit -S -n' "$conf"; then
    info "raising the node's open-file limit in $conf"
    echo 'ulimit -S -n 20000' >>"$conf"
  fi
}

start_fresh_node() {
  section "Starting a RabbitMQ node"
  apt_install rabbitmq-server curl
  if node_running; then
    return 0 # the package's postinst may have started it
  fi
  raise_fd_limit
  rabbitmq-plugins enable --offline "${PLUGINS[@]}"
  rabbitmq-server -detached
  timeout $((STARTUP_TIMEOUT_SECS + 10)) rabbitmqctl await_startup --timeout "$STARTUP_TIMEOUT_SECS" \
    || die "RabbitMQ did not start within ${STARTUP_TIMEOUT_SECS}s (see /var/log/rabbitmq/)"
}

enable_plugins() {
  section "Enabling ${PLUGINS[*]}"
  timeout 120 rabbitmq-plugins enable "${PLUGINS[@]}" >/dev/null
  wait_port 61613 "$PORT_TIMEOUT_SECS" "RabbitMQ STOMP"
  wait_port 15674 "$PORT_TIMEOUT_SECS" "RabbitMQ Web-STOMP"
  wait_port 15672 "$PORT_TIMEOUT_SECS" "RabbitMQ management"
}

# mgmt_put PATH JSON: idempotent PUT against the management API.
mgmt_put() {
  curl -fsS --max-time 10 -u "$MGMT_AUTH" -X PUT -H 'content-type: application/json' \
    -d "$2" "$MGMT/$1" >/dev/null \
    || die "management API PUT $1 failed (is guest allowed from 127.0.0.1?)"
}

# add_user NAME PASSWORD VHOST CONFIGURE WRITE READ
add_user() {
  mgmt_put "users/$1" "{\"password\":\"$2\",\"tags\":\"\"}"
  mgmt_put "permissions/$3/$1" "{\"configure\":\"$4\",\"write\":\"$5\",\"read\":\"$6\"}"
  info "user $1 on vhost $3 (configure '$4', write '$5', read '$6')"
}

create_fixtures() {
  section "Creating RabbitMQ test fixtures"
  local waited=0
  until curl -fsS --max-time 5 -u "$MGMT_AUTH" "$MGMT/overview" >/dev/null 2>&1; do
    (( waited >= 60 )) && die "management API on 127.0.0.1:15672 not answering after 60s"
    sleep 1
    waited=$((waited + 1))
  done
  mgmt_put "vhosts/tenant-a" '{}'
  mgmt_put "vhosts/tenant-b" '{}'
  add_user stompgate stompgate-secret %2F '.*' '.*' '.*'
  add_user svc-a svc-a-secret tenant-a '.*' '.*' '.*'
  add_user svc-b svc-b-secret tenant-b '.*' '.*' '.*'
  add_user svc-readonly svc-readonly-secret %2F '^$' '^$' '.*'
  mgmt_put "exchanges/%2F/FanoutDemandExchange" '{"type":"fanout","durable":true}'
  info "exchange FanoutDemandExchange (fanout, durable) on /"
}

main() {
  require_root
  if node_running; then
    info "reusing the running RabbitMQ node"
  else
    start_fresh_node
  fi
  enable_plugins
  create_fixtures
  section "RabbitMQ ready: STOMP 127.0.0.1:61613, Web-STOMP :15674/ws, management :15672"
}

main "$@"
