#!/usr/bin/env bash
# Installs (if missing) Debian's ActiveMQ Classic, adds a STOMP connector on 127.0.0.1:61623
# (61613 is RabbitMQ's) to the `main` instance, enables and starts it. Idempotent; run as root.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

INSTANCE=main
CONF_DIR=/etc/activemq/instances-available/$INSTANCE
CONF=$CONF_DIR/activemq.xml
ENABLED=/etc/activemq/instances-enabled/$INSTANCE
STOMP_PORT=61623
STOMP_URI="stomp://127.0.0.1:$STOMP_PORT?transport.hbGracePeriodMultiplier=1.5"
PORT_TIMEOUT_SECS=90
PIDFILE=/run/activemq/$INSTANCE.pid

add_stomp_connector() {
  if grep -q "stomp://127.0.0.1:$STOMP_PORT" "$CONF"; then
    info "STOMP connector already in $CONF"
    return 0
  fi
  grep -q '</transportConnectors>' "$CONF" || die "$CONF has no <transportConnectors> element"
  cp -n "$CONF" "$CONF.orig" || true
  # XML needs & escaped; this URI has none. Insert before the closing element.
  sed -i "s#\([[:space:]]*\)</transportConnectors>#\1    <transportConnector name=\"stomp\" uri=\"$STOMP_URI\"/>\n\1</transportConnectors>#" "$CONF"
  grep -q "stomp://127.0.0.1:$STOMP_PORT" "$CONF" || die "could not add the STOMP connector to $CONF"
  info "added the STOMP connector on 127.0.0.1:$STOMP_PORT to $CONF"
  RESTART=1
}

enable_instance() {
  if [[ ! -e $ENABLED ]]; then
    ln -s "$CONF_DIR" "$ENABLED"
    info "enabled instance $INSTANCE"
  fi
}

activemq_running() {
  pgrep -u activemq -f 'activemq.*\.jar' >/dev/null 2>&1
}

start_activemq() {
  if activemq_running && [[ ${RESTART:-0} == 1 ]]; then
    info "restarting ActiveMQ to load the new connector"
    service activemq stop >/dev/null 2>&1 || true
    local waited=0
    while activemq_running && (( waited < 30 )); do sleep 1; waited=$((waited + 1)); done
  fi
  if ! port_open "$STOMP_PORT" && ! activemq_running; then
    # A pid file left by a killed broker (CI ends what a session left running) makes the init
    # script's check match a dead or zombie pid and skip the start.
    rm -f "$PIDFILE"
    service activemq start || /etc/init.d/activemq start \
      || die "could not start ActiveMQ (see /var/lib/activemq/$INSTANCE/data/)"
  fi
  wait_port "$STOMP_PORT" "$PORT_TIMEOUT_SECS" "ActiveMQ STOMP"
}

main() {
  require_root
  section "ActiveMQ (STOMP on 127.0.0.1:$STOMP_PORT)"
  apt_install activemq
  [[ -f $CONF ]] || die "$CONF missing after installing activemq"
  RESTART=0
  add_stomp_connector
  enable_instance
  start_activemq
  section "ActiveMQ ready: STOMP 127.0.0.1:$STOMP_PORT"
}

main "$@"
