#!/usr/bin/env bash
# The RabbitMQ cluster section of scripts/test.sh: starts the three extra nodes
# (scripts/setup-rabbitmq-cluster.sh; ~50 s cold on 2 cores, ~130 MiB RSS per node), runs
# tests/cluster_failover.rs (~31 s; it SIGKILLs the first node and restarts it) and
# tests/cluster_alarm.rs (~10 s; a memory alarm) against them, then stops the cluster, also
# when a test fails or the section times out. Run as root.
#
# Usage: scripts/test-cluster.sh [--keep]   (--keep: leave the cluster running afterwards)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

KEEP=false
[[ ${1:-} == --keep ]] && KEEP=true

stop_cluster() {
  $KEEP || scripts/setup-rabbitmq-cluster.sh stop || true
}
trap stop_cluster EXIT
trap 'exit 143' TERM INT

scripts/setup-rabbitmq-cluster.sh start
export STOMPGATE_TEST_CLUSTER=127.0.0.1:61701,127.0.0.1:61702,127.0.0.1:61703
section "tests/cluster_failover.rs and tests/cluster_alarm.rs against $STOMPGATE_TEST_CLUSTER"
cargo test --test cluster_failover --test cluster_alarm -- --nocapture
