#!/usr/bin/env bash
# Checks the gateway's /metrics exposition with `promtool check metrics` (Prometheus naming
# and format lint) on top of the prometheus-parse assertions of tests/metrics_gateway.rs.
#
# Installs Debian's `prometheus` package for promtool when it is missing (about 19 MB to
# download, 96 MB installed; --no-install-recommends), then runs the metrics tests with
# STOMPGATE_REQUIRE_PROMTOOL=1 so that a missing promtool fails instead of skipping.
# Needs RabbitMQ on 127.0.0.1:61613 (scripts/setup-rabbitmq.sh).
#
# Usage: scripts/check-metrics.sh [--no-install]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

INSTALL_TIMEOUT_SECS=600
TEST_TIMEOUT_SECS=900

if ! command -v promtool >/dev/null 2>&1; then
  [[ "${1:-}" == "--no-install" ]] && die "promtool is not installed (apt-get install prometheus)"
  section "installing promtool (Debian package prometheus)"
  export DEBIAN_FRONTEND=noninteractive
  timeout "$INSTALL_TIMEOUT_SECS" apt-get update -qq
  timeout "$INSTALL_TIMEOUT_SECS" apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
info "$(promtool --version 2>&1 | head -1)"

section "metrics tests with promtool check metrics"
port_open 61613 || die "RabbitMQ STOMP is not listening on 127.0.0.1:61613 (run scripts/setup-rabbitmq.sh)"
STOMPGATE_REQUIRE_PROMTOOL=1 timeout "$TEST_TIMEOUT_SECS" \
  cargo test --test metrics_gateway --test metrics_dashboard
