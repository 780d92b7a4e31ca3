#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine for the failover tests, next to (never joined
# with) the default single node that the README's commands and the other tests use.
#
#   node            AMQP   STOMP          management  distribution
#   sg1@localhost   5701   127.0.0.1:61701  15701       25701
#   sg2@localhost   5702   127.0.0.1:61702  15702       25702
#   sg3@localhost   5703   127.0.0.1:61703  15703       25703
#
# These ports avoid the default node's (5672, 61613/61614, 15672/15674, 25672) and ActiveMQ's
# (61616, 61623, 8161). Each node runs as the `rabbitmq` user with its own state under
# $STATE_ROOT, one Erlang scheduler (+S 1:1: CI has 2 cores), STOMP and management enabled,
# management statistics sampled rarely. Quorum queues are available (RabbitMQ >= 3.8; a quorum
# queue needs the three members this makes). The user stompgate/stompgate-secret has full
# permissions on vhost `/`. Each node writes its OS pid to $STATE_ROOT/sgN/pid, which is what a
# test sends SIGKILL to.
#
# Usage: scripts/setup-rabbitmq-cluster.sh [start|stop|status|purge]
#   start    install RabbitMQ if missing; start whichever node is not running; cluster them;
#            idempotent (a node that was killed is started again and rejoins). ~30-60 s cold.
#   stop     stop the three nodes (state is kept).
#   status   print each node's state and the cluster membership; exit 1 unless all 3 run.
#   purge    stop, then delete the nodes' state.
#   alarm on|off   raise or clear a memory alarm on node 2 (blocks publishers cluster-wide).
# Prints STOMPGATE_TEST_CLUSTER=127.0.0.1:61701,127.0.0.1:61702,127.0.0.1:61703 when started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NODES=(1 2 3)
STATE_ROOT=/var/lib/rabbitmq/stompgate-cluster
RMQ_BIN=/usr/lib/rabbitmq/bin
STARTUP_TIMEOUT_SECS=120
STOP_TIMEOUT_SECS=60

node_name() { echo "sg$1@localhost"; }
stomp_port() { echo $((61700 + $1)); }
state_dir() { echo "$STATE_ROOT/sg$1"; }

# Runs a RabbitMQ tool as the `rabbitmq` user (its HOME holds the Erlang cookie the nodes and
# the CLI share), with node N's environment.
as_rabbitmq() {
  local n=$1
  shift
  local dir
  dir=$(state_dir "$n")
  runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq \
    RABBITMQ_NODENAME="$(node_name "$n")" \
    RABBITMQ_NODE_PORT=$((5700 + n)) \
    RABBITMQ_DIST_PORT=$((25700 + n)) \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" \
    RABBITMQ_LOG_BASE="$dir/log" \
    RABBITMQ_PID_FILE="$dir/pid" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S 1:1 +A 2 +sbwt none +sbwtdcpu none +sbwtdio none" \
    "$@"
}

ctl() {
  local n=$1
  shift
  as_rabbitmq "$n" timeout 60 "$RMQ_BIN/rabbitmqctl" -n "$(node_name "$n")" "$@"
}

node_running() {
  ctl "$1" status >/dev/null 2>&1
}

write_node_config() {
  local n=$1 dir
  dir=$(state_dir "$n")
  install -d -o rabbitmq -g rabbitmq "$dir" "$dir/log" "$dir/mnesia"
  cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$((5700 + n))
stomp.listeners.tcp.1 = 127.0.0.1:$(stomp_port "$n")
management.tcp.port = $((15700 + n))
management.tcp.ip = 127.0.0.1
management.rates_mode = none
collect_statistics_interval = 30000
# A killed member is noticed within seconds (the failover test kills one).
net_ticktime = 10
EOF
  echo '[rabbitmq_stomp,rabbitmq_management].' >"$dir/enabled_plugins"
  chown rabbitmq:rabbitmq "$dir/rabbitmq.conf" "$dir/enabled_plugins"
}

start_node() {
  local n=$1
  if node_running "$n"; then
    info "$(node_name "$n") is running"
    return 0
  fi
  write_node_config "$n"
  info "starting $(node_name "$n")"
  # The node's open-file limit comes from this shell (BROKERS.md: 1024 caps STOMP at ~830).
  (ulimit -S -n 4096 && as_rabbitmq "$n" "$RMQ_BIN/rabbitmq-server" -detached)
}

await_node() {
  local n=$1
  ctl "$n" await_startup --timeout "$STARTUP_TIMEOUT_SECS" >/dev/null \
    || die "$(node_name "$n") did not start within ${STARTUP_TIMEOUT_SECS}s (see $(state_dir "$n")/log)"
}

# Nodes 2 and 3 join node 1's cluster unless they are in it already.
join_cluster() {
  local n=$1 first
  first=$(node_name 1)
  # Captured first: `grep -q` closing the pipe early must not read as "not a member" (a reset
  # of a member would follow).
  local status
  status=$(ctl "$n" cluster_status 2>/dev/null || true)
  if [[ $status == *"$first"* ]]; then
    return 0
  fi
  info "$(node_name "$n") joins $first"
  local step
  for step in stop_app reset "join_cluster $first" start_app; do
    # shellcheck disable=SC2086 # "join_cluster NODE" is two words on purpose
    ctl "$n" $step >/dev/null 2>&1 || die "$(node_name "$n"): rabbitmqctl $step failed"
  done
}

add_fixtures() {
  ctl 1 add_user stompgate stompgate-secret >/dev/null 2>&1 || true
  ctl 1 change_password stompgate stompgate-secret >/dev/null
  ctl 1 set_permissions -p / stompgate '.*' '.*' '.*' >/dev/null
}

cmd_start() {
  require_root
  section "Starting the 3-node RabbitMQ test cluster"
  apt_install rabbitmq-server curl
  install -d -o rabbitmq -g rabbitmq "$STATE_ROOT"
  local n
  # Started together, awaited in turn: boot time overlaps.
  for n in "${NODES[@]}"; do start_node "$n"; done
  for n in "${NODES[@]}"; do await_node "$n"; done
  join_cluster 2
  join_cluster 3
  add_fixtures
  for n in "${NODES[@]}"; do wait_port "$(stomp_port "$n")" 60 "$(node_name "$n") STOMP"; done
  cmd_status
  echo "STOMPGATE_TEST_CLUSTER=127.0.0.1:61701,127.0.0.1:61702,127.0.0.1:61703"
}

cmd_stop() {
  require_root
  section "Stopping the RabbitMQ test cluster"
  local n
  for n in "${NODES[@]}"; do
    if node_running "$n"; then
      info "stopping $(node_name "$n")"
      ctl "$n" stop >/dev/null || true
    fi
  done
  # A node that did not stop in time is killed by its pid file.
  local deadline=$((SECONDS + STOP_TIMEOUT_SECS))
  for n in "${NODES[@]}"; do
    local pidfile
    pidfile="$(state_dir "$n")/pid"
    [[ -f $pidfile ]] || continue
    local pid
    pid=$(cat "$pidfile")
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

cmd_status() {
  local n up=0
  for n in "${NODES[@]}"; do
    if node_running "$n"; then
      info "$(node_name "$n"): running (STOMP 127.0.0.1:$(stomp_port "$n"))"
      up=$((up + 1))
    else
      info "$(node_name "$n"): not running"
    fi
  done
  if ((up > 0)); then
    for n in "${NODES[@]}"; do
      if node_running "$n"; then
        ctl "$n" cluster_status --formatter json 2>/dev/null \
          | python3 -c 'import json,sys; d=json.load(sys.stdin); print("    running members:", " ".join(sorted(d.get("running_nodes", []))))' \
          || true
        break
      fi
    done
  fi
  ((up == ${#NODES[@]}))
}

# A memory alarm on node 2 (cluster-wide: every publisher is blocked) or its end.
cmd_alarm() {
  require_root
  case "${1:-}" in
    on) ctl 2 set_vm_memory_high_watermark 0.0000001 >/dev/null ;;
    off) ctl 2 set_vm_memory_high_watermark 0.4 >/dev/null ;;
    *) die "usage: $0 alarm on|off" ;;
  esac
  info "memory alarm $1 (node $(node_name 2))"
}

cmd_purge() {
  cmd_stop
  rm -rf "$STATE_ROOT"
  info "removed $STATE_ROOT"
}

case "${1:-start}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  purge) cmd_purge ;;
  alarm) cmd_alarm "${2:-}" ;;
  *) die "usage: $0 [start|stop|status|purge|alarm on|off]" ;;
esac
