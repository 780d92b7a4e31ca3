#!/usr/bin/env bash
# Gives the local RabbitMQ node a STOMP TLS listener on 127.0.0.1:61614 with test certificates,
# for the gateway's TLS-to-the-broker tests. Idempotent; run as root after setup-rabbitmq.sh.
#
# Certificates (ECDSA P-256, made with the openssl CLI, kept across runs while valid) in
# $STOMPGATE_BROKER_TLS_DIR (default /etc/rabbitmq/stompgate-tls):
#   ca.crt / ca.key            the test CA the gateway trusts (--upstream-ca)
#   broker.crt / broker.key    RabbitMQ's certificate: CN and SAN localhost, SAN IP 127.0.0.1
#   gateway.crt / gateway.key  a client certificate for the gateway (--upstream-client-cert)
#
# RabbitMQ reads listener settings only at boot (`stop_app`/`start_app` does not re-read
# rabbitmq.conf), so the shared node is restarted ONCE: only when 61614 is not yet listening.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TLS_DIR="${STOMPGATE_BROKER_TLS_DIR:-/etc/rabbitmq/stompgate-tls}"
CONF=/etc/rabbitmq/rabbitmq.conf
TLS_PORT=61614
STARTUP_TIMEOUT_SECS=120
PORT_TIMEOUT_SECS=90
CERT_DAYS=825
BEGIN_MARK="# BEGIN stompgate STOMP TLS listener (scripts/setup-rabbitmq-tls.sh)"
END_MARK="# END stompgate STOMP TLS listener"

# new_key FILE: an ECDSA P-256 private key (PKCS#8).
new_key() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

# sign NAME CN EXTENSIONS: NAME.key + NAME.crt signed by the test CA.
sign() {
  local name=$1 cn=$2 ext=$3
  new_key "$TLS_DIR/$name.key"
  openssl req -new -key "$TLS_DIR/$name.key" -subj "/CN=$cn" -out "$TLS_DIR/$name.csr"
  openssl x509 -req -in "$TLS_DIR/$name.csr" -CA "$TLS_DIR/ca.crt" -CAkey "$TLS_DIR/ca.key" \
    -CAcreateserial -days "$CERT_DAYS" -out "$TLS_DIR/$name.crt" \
    -extfile <(printf '%b' "$ext") 2>/dev/null
  rm -f "$TLS_DIR/$name.csr"
}

# True when the files exist and the broker certificate is valid for at least another day.
certs_usable() {
  local f
  for f in ca.crt ca.key broker.crt broker.key gateway.crt gateway.key; do
    [[ -s "$TLS_DIR/$f" ]] || return 1
  done
  openssl x509 -in "$TLS_DIR/broker.crt" -noout -checkend 86400 >/dev/null \
    && openssl verify -CAfile "$TLS_DIR/ca.crt" "$TLS_DIR/broker.crt" >/dev/null 2>&1
}

make_certs() {
  section "Test certificates in $TLS_DIR"
  mkdir -p "$TLS_DIR"
  if certs_usable; then
    info "reusing the existing certificates"
    return 0
  fi
  new_key "$TLS_DIR/ca.key"
  openssl req -x509 -new -key "$TLS_DIR/ca.key" -subj "/CN=stompgate test CA" \
    -days "$CERT_DAYS" -out "$TLS_DIR/ca.crt" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
  sign broker localhost \
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n'
  sign gateway stompgate \
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n'
  chown -R root:rabbitmq "$TLS_DIR"
  chmod 0750 "$TLS_DIR"
  chmod 0640 "$TLS_DIR"/*
  info "new CA, broker and gateway certificates"
  # A running node caches PEM files by name; make it read the new ones.
  timeout 30 rabbitmqctl eval 'ssl:clear_pem_cache().' >/dev/null 2>&1 || true
}

# The listener block for rabbitmq.conf. verify_none: the gateway's client certificate is
# optional, and a test CA must not gate the plain listener's users.
conf_block() {
  cat <<CONF
$BEGIN_MARK
stomp.listeners.ssl.1 = 127.0.0.1:$TLS_PORT
ssl_options.cacertfile = $TLS_DIR/ca.crt
ssl_options.certfile = $TLS_DIR/broker.crt
ssl_options.keyfile = $TLS_DIR/broker.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
$END_MARK
CONF
}

# Copies stdin to stdout without the stompgate block.
without_block() {
  awk -v b="$BEGIN_MARK" -v e="$END_MARK" '$0 == b { skip = 1 } !skip { print } $0 == e { skip = 0 }'
}

write_conf() {
  section "Configuring $CONF"
  touch "$CONF"
  if without_block <"$CONF" | grep -q '^ssl_options\.'; then
    die "$CONF already sets ssl_options outside the stompgate block; merge by hand"
  fi
  local tmp
  tmp=$(mktemp)
  without_block <"$CONF" >"$tmp"
  conf_block >>"$tmp"
  if cmp -s "$tmp" "$CONF"; then
    info "already configured"
  else
    cat "$tmp" >"$CONF"
    info "STOMP TLS listener 127.0.0.1:$TLS_PORT added"
  fi
  rm -f "$tmp"
}

node_running() {
  timeout 30 rabbitmqctl status >/dev/null 2>&1
}

restart_node() {
  section "Restarting the RabbitMQ node (listeners are read at boot only)"
  timeout 120 rabbitmqctl stop >/dev/null || die "rabbitmqctl stop failed"
  local waited=0
  while node_running; do
    (( waited >= 60 )) && die "RabbitMQ did not stop within 60s"
    sleep 1
    waited=$((waited + 1))
  done
  rabbitmq-server -detached
  # await_startup fails at once while the new node is not yet registered with epmd: retry.
  waited=0
  until timeout 30 rabbitmqctl await_startup --timeout 25 >/dev/null 2>&1; do
    (( waited >= STARTUP_TIMEOUT_SECS )) \
      && die "RabbitMQ did not come back within ${STARTUP_TIMEOUT_SECS}s (see /var/log/rabbitmq/)"
    sleep 2
    waited=$((waited + 2))
  done
}

# Fails unless a TLS handshake on the port verifies against the test CA for `localhost`.
check_handshake() {
  echo | timeout 10 openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername localhost \
    -verify_hostname localhost -CAfile "$TLS_DIR/ca.crt" -verify_return_error -brief \
    >/dev/null 2>&1 || die "TLS handshake on 127.0.0.1:$TLS_PORT does not verify against $TLS_DIR/ca.crt"
  info "TLS handshake on 127.0.0.1:$TLS_PORT verifies against $TLS_DIR/ca.crt"
}

main() {
  require_root
  command -v openssl >/dev/null || apt_install openssl
  make_certs
  write_conf
  if ! node_running; then
    "$REPO_ROOT/scripts/setup-rabbitmq.sh"
  elif port_open "$TLS_PORT"; then
    info "the STOMP TLS listener is already up: no restart"
  else
    restart_node
  fi
  wait_port 61613 "$PORT_TIMEOUT_SECS" "RabbitMQ STOMP"
  wait_port "$TLS_PORT" "$PORT_TIMEOUT_SECS" "RabbitMQ STOMP TLS"
  wait_port 15674 "$PORT_TIMEOUT_SECS" "RabbitMQ Web-STOMP"
  wait_port 15672 "$PORT_TIMEOUT_SECS" "RabbitMQ management"
  check_handshake
  section "RabbitMQ STOMP TLS ready on 127.0.0.1:$TLS_PORT (CA: $TLS_DIR/ca.crt)"
}

main "$@"
