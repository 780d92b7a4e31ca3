#!/usr/bin/env bash
# The deployment, run rather than parsed (CI section "deployment"; scripts/setup-deploy.sh first):
#   1. image: deploy/Containerfile's `prebuilt` stage on the local mmdebstrap base, around the
#      binary `cargo build --release --locked` makes; run with podman as uid 10001 on a read-only
#      root file system; its HEALTHCHECK turns healthy; a stomp.js client exchanges a message
#      through it with the host's RabbitMQ (WebSocket and SockJS);
#   2. manifests: every overlay renders (kubectl kustomize), validates against the Kubernetes 1.30
#      schemas offline (kubernetes-validate --strict), and passes checkov with every skipped
#      check's reason printed;
#   3. kube play: the standalone overlay, with the local image and the host's broker patched in,
#      runs under `podman kube play` with its ConfigMap and Secrets' files (podman 4.3
#      workarounds: see kube_play_workarounds); a client connects; `podman kube down` cleans up;
#   4. scale-out: two gateway containers behind haproxy (deploy/haproxy.cfg); WebSocket and SockJS
#      xhr-streaming clients publish receipted messages while each instance in turn gets SIGTERM
#      and is replaced (a rolling update); every receipted message must come back.
# Everything it starts (containers, pods, haproxy, node) is removed on exit,
# also on failure. Containers use the host's network: the broker is on the host's loopback.
#
# Usage: scripts/test-deploy.sh [--no-setup]     (as root)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

IMAGE=${DEPLOY_IMAGE:-localhost/stompgate:ci}
BASE_IMAGE=${DEPLOY_BASE_IMAGE:-localhost/stompgate-base:bookworm}
RABBITMQ=${STOMPGATE_TEST_RABBITMQ:-127.0.0.1:61613}
BROKER_LOGIN=stompgate
BROKER_PASSCODE=stompgate-secret
# Kubernetes API versions the overlays must validate against: an older supported one, and the
# newest kubernetes-validate knows.
K8S_VERSIONS=(1.30.0 1.37.0)
# Names of everything this script creates in podman, so cleanup removes exactly those.
NAME=stompgate-ci
CLIENT=tests/js/deploy/client.mjs
export CONTAINERS_CONF=${CONTAINERS_CONF:-$REPO_ROOT/scripts/deploy/containers.conf}
export PATH=$REPO_ROOT/target/deploy-venv/bin:$PATH

WORK=$(mktemp -d /tmp/stompgate-deploy.XXXXXX)
TIMINGS=()

cleanup() {
  local rc=$?
  set +e # remove everything, even when one removal fails
  [[ -f $WORK/play.yaml ]] && podman kube down "$WORK/play.yaml" >/dev/null 2>&1
  podman ps -a --format '{{.Names}}' | grep "^$NAME-" | xargs -r podman rm -f -t 0 >/dev/null 2>&1
  kill_started
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# step TITLE FUNCTION: runs one part under a header and records its duration.
step() {
  local t0=$SECONDS
  section "deploy: $1"
  "$2"
  TIMINGS+=("$(printf '%4ss  %s' "$((SECONDS - t0))" "$1")")
}

# The secrets the containers mount: the broker passcode and an admin token (readable by 10001).
make_secrets() {
  mkdir -p "$WORK/secrets"
  printf '%s' "$BROKER_PASSCODE" >"$WORK/secrets/upstream-passcode"
  head -c 24 /dev/urandom | base64 | tr -d '\n/+=' >"$WORK/secrets/admin-token"
  chown -R 10001:10001 "$WORK/secrets"
  chmod 0500 "$WORK/secrets"
  chmod 0400 "$WORK/secrets"/*
  ADMIN_TOKEN=$(cat "$WORK/secrets/admin-token")
}

# run_gateway NAME CLIENT_PORT ADMIN_PORT: the image as the docs run it, on the host's network.
run_gateway() {
  podman run -d --name "$1" --network host --read-only --read-only-tmpfs=false \
    --cap-drop ALL --security-opt no-new-privileges \
    -e STOMPGATE_LISTEN="127.0.0.1:$2" -e STOMPGATE_ADMIN_LISTEN="127.0.0.1:$3" \
    -e STOMPGATE_UPSTREAM="$RABBITMQ" -e STOMPGATE_UPSTREAM_LOGIN="$BROKER_LOGIN" \
    -e STOMPGATE_UPSTREAM_PASSCODE_FILE=/run/stompgate/upstream-passcode \
    -e STOMPGATE_ADMIN_TOKEN_FILE=/run/stompgate/admin-token \
    -e STOMPGATE_SHUTDOWN_GRACE=3s \
    -v "$WORK/secrets:/run/stompgate:ro" "$IMAGE" >/dev/null 2>"$WORK/podman-run.err" \
    || die "podman run $1: $(cat "$WORK/podman-run.err")"
  # Without systemd podman cannot schedule the HEALTHCHECK's timer (it logs an error and goes
  # on); `podman healthcheck run` runs it on demand.
  wait_port "$2" 30 "container $1"
}

# wait_http URL SECONDS: until URL answers 200.
wait_http() {
  local i
  for i in $(seq 1 $(($2 * 5))); do
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  die "$1 did not answer 200 within $2 s"
}

build_image() {
  cargo build --release --locked
  [[ -x target/release/stompgate ]] || die "no target/release/stompgate"
  podman image exists "$BASE_IMAGE" || die "$BASE_IMAGE missing: run scripts/setup-deploy.sh"
  local previous
  previous=$(podman image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  # --format docker keeps the HEALTHCHECK; --target prebuilt packages the binary just built.
  timeout 600 podman build --quiet --format docker --target prebuilt --build-arg RUNTIME_IMAGE="$BASE_IMAGE" \
    --ignorefile deploy/Containerfile.dockerignore -f deploy/Containerfile -t "$IMAGE" . >/dev/null
  # The image this run replaced, so reruns do not pile up untagged images.
  if [[ -n $previous && $previous != $(podman image inspect -f '{{.Id}}' "$IMAGE") ]]; then
    podman rmi "$previous" >/dev/null 2>&1 || true
  fi
  info "$IMAGE: $(podman image inspect -f '{{.Size}}' "$IMAGE" | numfmt --to=iec) (base $(podman image inspect -f '{{.Size}}' "$BASE_IMAGE" | numfmt --to=iec))"
  [[ $(podman image inspect -f '{{.Config.User}}' "$IMAGE") == 10001:10001 ]] || die "image user is not 10001"
  podman image inspect -f '{{.Config.Healthcheck.Test}}' "$IMAGE" | grep -q healthcheck \
    || die "image has no HEALTHCHECK"
}

run_image() {
  local cp ap pid ctr=$NAME-single
  cp=$(free_port) ap=$(free_port)
  run_gateway "$ctr" "$cp" "$ap"
  pid=$(podman inspect -f '{{.State.Pid}}' "$ctr")
  [[ $(ps -o uid= -p "$pid" | tr -d ' ') == 10001 ]] || die "gateway process is not uid 10001"
  [[ $(podman inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$ctr") == true ]] || die "rootfs not read-only"
  # /tmp is world-writable in the image: only a read-only root file system refuses this.
  local out
  out=$(podman exec "$ctr" /bin/touch /tmp/probe 2>&1) && die "wrote /tmp in the container"
  grep -q 'Read-only file system' <<<"$out" || die "unexpected: $out"
  info "process uid 10001, read-only root file system ($out)"
  podman healthcheck run "$ctr" >/dev/null || die "HEALTHCHECK failed"
  local health
  health=$(podman inspect -f '{{.State.Healthcheck.Status}}' "$ctr")
  [[ $health == healthy ]] || die "health status is $health"
  info "HEALTHCHECK (stompgate healthcheck, no curl in the image): $health"
  # ...and the same check says so when the answer is not 200 (here: a 404 on the client port).
  local rc=0
  podman exec "$ctr" /usr/local/bin/stompgate healthcheck --url "http://127.0.0.1:$cp/no-such-path" \
    2>/dev/null || rc=$?
  (( rc == 1 )) || die "healthcheck of a 404 exited $rc, not 1"
  timeout 60 node "$CLIENT" exchange "ws://127.0.0.1:$cp/ws"
  timeout 60 node "$CLIENT" exchange "http://127.0.0.1:$cp/sockjs"
  podman rm -f -t 5 "$ctr" >/dev/null 2>&1
}

# kubernetes-validate and checkov on each rendered overlay; skipped checks print their reasons.
check_manifests() {
  local overlay out
  for overlay in deploy/kubernetes/overlays/*/; do
    overlay=$(basename "$overlay")
    out=$WORK/$overlay.yaml
    kubectl kustomize "deploy/kubernetes/overlays/$overlay" >"$out"
    info "$overlay: $(grep -c '^kind:' "$out") objects ($(grep '^kind:' "$out" | awk '{print $2}' | sort | uniq -c | awk '{printf "%s%s ", $2, ($1>1?"×"$1:"")}'))"
    local version
    for version in "${K8S_VERSIONS[@]}"; do
      kubernetes-validate -k "$version" --strict "$out" >"$WORK/$overlay.validate" 2>&1 \
        || die "$overlay: schema validation ($version) failed: $(grep -v '^INFO' "$WORK/$overlay.validate")"
      info "$overlay: kubernetes-validate -k $version --strict: $(grep -c '^INFO.*passed' "$WORK/$overlay.validate") objects pass; $(grep -v '^INFO' "$WORK/$overlay.validate" | sed 's/^WARN [^ ]* //' | sort -u | tr '\n' ' ')"
    done
    check_project_rules "$out" || die "$overlay: project rules"
    checkov --skip-download --framework kubernetes -o json -f "$out" >"$WORK/$overlay.checkov.json" || true
    python3 - "$overlay" "$WORK/$overlay.checkov.json" <<'PY' || die "$overlay: checkov found failed checks"
import json, sys
name, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
r = r[0] if isinstance(r, list) else r
res = r.get("results", {})
failed, skipped = res.get("failed_checks", []), res.get("skipped_checks", [])
n = r["summary"]
print(f"    {name}: checkov passed {n['passed']}, failed {n['failed']}, skipped {n['skipped']}, parsing errors {n['parsing_errors']}")
if n["passed"] == 0 or n["parsing_errors"]:
    sys.exit("checkov checked nothing or could not parse the file")
for c in skipped:
    print(f"      skipped {c['check_id']} on {c['resource']}: {c.get('check_result', {}).get('suppress_comment', '?')}")
for c in failed:
    print(f"      FAILED {c['check_id']} ({c['check_name']}) on {c['resource']}")
sys.exit(1 if failed or n["failed"] else 0)
PY
  done
}

# Rules of this project's manifests that no generic scan knows, on every rendered overlay:
# clients never reach the admin port (client Service and Ingress carry the client port only),
# and the grace period covers the preStop pause plus the ConfigMap's shutdown_grace.
check_project_rules() {
  python3 - "$1" <<'PY'
import re, sys, tomllib
import yaml  # from the venv (a checkov dependency)
path = sys.argv[1]
docs = [d for d in yaml.safe_load_all(open(path)) if d]
fail = lambda msg: sys.exit(f"{path}: {msg}")
for d in docs:
    name = d["metadata"]["name"]
    if d["kind"] == "Service" and not name.endswith("-admin"):
        for p in d["spec"]["ports"]:
            if p.get("targetPort") in ("admin", 8081) or p.get("port") == 8081:
                fail(f"Service {name} exposes the admin port to clients")
    if d["kind"] == "Ingress":
        for rule in d["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                port = p["backend"]["service"]["port"]
                if port.get("name") != "client" or p["backend"]["service"]["name"].endswith("-admin"):
                    fail(f"Ingress {name} routes to {p['backend']['service']}")
config = next(d for d in docs if d["kind"] == "ConfigMap" and "stompgate.toml" in d.get("data", {}))
grace = tomllib.loads(config["data"]["stompgate.toml"])["shutdown_grace"]
grace_s = int(re.fullmatch(r"(\d+)s", grace).group(1))
for d in docs:
    if d["kind"] not in ("Deployment", "StatefulSet"):
        continue
    pod = d["spec"]["template"]["spec"]
    for c in pod["containers"]:
        if c["name"] != "stompgate":
            continue
        pause = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
        if pod["terminationGracePeriodSeconds"] <= pause + grace_s:
            fail(f"{d['kind']} {d['metadata']['name']}: grace {pod['terminationGracePeriodSeconds']} s <= preStop {pause} s + shutdown_grace {grace_s} s")
print(f"    {path.rsplit('/', 1)[-1]}: admin port kept from clients; grace > preStop + shutdown_grace ({grace})")
PY
}

# The standalone overlay under podman kube play: a kustomization on top of it puts in the local
# image, the host's broker and ports (host network), and the real broker passcode.
kube_play() {
  local cp ap overlay=$WORK/kube-play
  cp=$(free_port) ap=$(free_port)
  mkdir -p "$overlay"
  cat >"$overlay/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$overlay" deploy/kubernetes/overlays/standalone)
images:
  - name: registry.example.com/stompgate
    newName: ${IMAGE%:*}
    newTag: ${IMAGE##*:}
patches:
  - patch: |
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: stompgate, namespace: stompgate}
      spec:
        # One pod: kube play runs every replica, and on the host's network they would share ports.
        replicas: 1
        template:
          spec:
            containers:
              - name: stompgate
                env:
                  - {name: STOMPGATE_UPSTREAM, value: "$RABBITMQ"}
                  - {name: STOMPGATE_LISTEN, value: "127.0.0.1:$cp"}
                  - {name: STOMPGATE_ADMIN_LISTEN, value: "127.0.0.1:$ap"}
                livenessProbe:
                  exec:
                    command: ["/usr/local/bin/stompgate", "healthcheck", "--url", "http://127.0.0.1:$ap/healthz"]
  - patch: |
      apiVersion: v1
      kind: Secret
      metadata: {name: stompgate-upstream, namespace: stompgate}
      data: {upstream-passcode: $(printf '%s' "$BROKER_PASSCODE" | base64 -w0)}
  - patch: |
      apiVersion: v1
      kind: Secret
      metadata: {name: stompgate-admin, namespace: stompgate}
      data: {admin-token: $(printf '%s' "$ADMIN_TOKEN" | base64 -w0)}
EOF
  kubectl kustomize "$overlay" >"$WORK/rendered.yaml"
  kube_play_workarounds "$WORK/rendered.yaml" >"$WORK/play.yaml"
  timeout 120 podman kube play --network host "$WORK/play.yaml" >"$WORK/play.out" 2>&1 \
    || die "kube play failed: $(tail -5 "$WORK/play.out")"
  (wait_port "$cp" 30 "kube play gateway") || {
    podman ps -a --format '{{.Names}} {{.Status}}' >&2
    podman ps -a --format '{{.Names}}' | grep -- '-stompgate$' | xargs -r -n1 podman logs --tail 5 >&2
    die "the played gateway never listened (play.yaml: $(cat "$WORK/play.yaml"))"
  }
  local ctr
  ctr=$(podman ps --format '{{.Names}}' | grep -- '-stompgate$' | head -1 || true)
  [[ -n $ctr ]] || die "no running stompgate container in the pod"
  info "pod container $ctr (pods: $(podman pod ps --format '{{.Name}}' | tr '\n' ' '))"
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ap/metrics")
  [[ $code == 401 ]] || die "/metrics without the Secret's token answered $code"
  curl -fsS -o /dev/null -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$ap/metrics" \
    || die "/metrics with the Secret's token failed"
  info "ConfigMap TOML and both Secrets' files mounted; /metrics: 401 without the token, 200 with it"
  timeout 60 node "$CLIENT" exchange "ws://127.0.0.1:$cp/ws"
  podman healthcheck run "$ctr" >/dev/null && info "liveness probe (as a podman healthcheck): healthy" \
    || die "liveness probe failed under podman"
  timeout 120 podman kube down "$WORK/play.yaml" >/dev/null 2>&1
  rm -f "$WORK/play.yaml"
  ! podman pod ps --format '{{.Name}}' | grep -q stompgate || die "kube down left a pod"
  ! port_open "$cp" || die "kube down left the gateway listening"
  info "kube down: pod gone, port closed"
}

# What podman 4.3's kube play cannot take from the rendered overlay, worked around:
# - Kubernetes objects it has no use for (Namespace, Service, Ingress, HPA, PDB, NetworkPolicy,
#   ServiceMonitor, ServiceAccount) are left out.
# - With `--network host` (the broker is on the host's loopback) it refuses containerPorts
#   ("PortMappings can only be used with Bridge or slirp4netns networking"): they are dropped
#   (the listeners take their ports from the patched env anyway).
# - Secret volumes: it writes the values out base64-encoded (containers/podman#16625), and env
#   `secretKeyRef` fails ("secret ... is not valid JSON"). So each Secret's decoded values are
#   written to a host directory (uid 10001, mode 0400) and its volume becomes a hostPath volume
#   at the same mount path: the gateway reads the same files it reads in Kubernetes.
# The ConfigMap is played and mounted as in Kubernetes.
kube_play_workarounds() {
  python3 - "$1" "$WORK/kube-secrets" <<'PY'
import base64, os, sys
import yaml  # from the venv (a checkov dependency)
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
secret_root = sys.argv[2]
for d in docs:
    if d["kind"] != "Secret":
        continue
    path = os.path.join(secret_root, d["metadata"]["name"])
    os.makedirs(path, mode=0o500)
    for key, value in d.get("data", {}).items():
        file = os.path.join(path, key)
        with open(file, "wb") as f:
            f.write(base64.b64decode(value))
        os.chmod(file, 0o400)
        os.chown(file, 10001, 10001)
    os.chown(path, 10001, 10001)
keep = []
for d in docs:
    if d["kind"] == "Deployment":
        for c in d["spec"]["template"]["spec"]["containers"]:
            c.pop("ports", None)
        for v in d["spec"]["template"]["spec"].get("volumes", []):
            if "secret" in v:
                name = v.pop("secret")["secretName"]
                v["hostPath"] = {"path": os.path.join(secret_root, name), "type": "Directory"}
    if d["kind"] in ("ConfigMap", "Deployment"):
        keep.append(d)
print(yaml.safe_dump_all(keep, sort_keys=False))
PY
}

scale_out() {
  local a_cp a_ap b_cp b_ap lb
  a_cp=$(free_port) a_ap=$(free_port) b_cp=$(free_port) b_ap=$(free_port) lb=$(free_port)
  run_gateway "$NAME-a" "$a_cp" "$a_ap"
  run_gateway "$NAME-b" "$b_cp" "$b_ap"
  STOMPGATE_LB_BIND=127.0.0.1:$lb STOMPGATE_GW_A=127.0.0.1:$a_cp STOMPGATE_GW_B=127.0.0.1:$b_cp \
    STOMPGATE_GW_A_ADMIN_PORT=$a_ap STOMPGATE_GW_B_ADMIN_PORT=$b_ap \
    haproxy -db -f deploy/haproxy.cfg >"$WORK/haproxy.out" 2>&1 &
  PIDS+=("$!")
  (wait_port "$lb" 10 haproxy) || die "haproxy: $(tail -5 "$WORK/haproxy.out")"
  sleep 2 # both servers pass `rise 2` of the 1 s readiness checks
  node "$CLIENT" failover --ws "ws://127.0.0.1:$lb/ws" --sockjs "http://127.0.0.1:$lb/sockjs" \
    --clients 3 --stop-file "$WORK/stop" >"$WORK/failover.out" 2>"$WORK/failover.err" &
  local client=$!
  PIDS+=("$client")
  local i
  for i in $(seq 1 300); do
    grep -q '^ready' "$WORK/failover.out" && break
    kill -0 "$client" 2>/dev/null || die "failover client died: $(cat "$WORK/failover.err")"
    sleep 0.1
  done
  grep -q '^ready' "$WORK/failover.out" || die "failover clients never got ready"
  info "6 clients (3 WebSocket, 3 SockJS xhr-streaming) through haproxy 127.0.0.1:$lb"
  roll "$NAME-a" "$a_cp" "$a_ap"
  roll "$NAME-b" "$b_cp" "$b_ap"
  sleep 3
  touch "$WORK/stop"
  local rc=0
  timeout 60 tail --pid="$client" -f /dev/null || kill "$client" 2>/dev/null
  wait "$client" || rc=$?
  tail -1 "$WORK/failover.out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
t = r["totals"]
print(f"    receipted {t['"'"'receipted'"'"']}, received {t['"'"'received'"'"']}, missing {t['"'"'missing'"'"']}")
for c in r["clients"]:
    print(f"      {c['"'"'kind'"'"']:6} receipted {c['"'"'receipted'"'"']:4} received {c['"'"'received'"'"']:4} missing {len(c['"'"'missing'"'"'])} connects {c['"'"'connects'"'"']}")
' || true
  # What haproxy saw: each instance leaves on its /readyz 503 (drain) and comes back ready.
  grep -o 'Server websocket/[ab] is [A-Z]*, reason: [^,]*\(, code: [0-9]*\)\?' "$WORK/haproxy.out" \
    | sed 's/^/      haproxy: /' >&2 || true
  (( rc == 0 )) || die "failover: $(cat "$WORK/failover.err")"
}

# roll CONTAINER CLIENT_PORT ADMIN_PORT: SIGTERM (podman stop), wait for it to drain and exit,
# start its replacement on the same ports, wait until it is ready behind haproxy.
roll() {
  local t0=$SECONDS
  # (stderr: without systemd podman logs an error about the healthcheck timer it never made)
  podman stop -t 20 "$1" >/dev/null 2>"$WORK/podman-stop.err" || die "podman stop: $(cat "$WORK/podman-stop.err")"
  info "$1: SIGTERM, drained and exited in $((SECONDS - t0))s (exit $(podman inspect -f '{{.State.ExitCode}}' "$1"))"
  podman rm "$1" >/dev/null 2>&1
  sleep 2 # clients moved to the other instance meanwhile
  run_gateway "$1" "$2" "$3"
  wait_http "http://127.0.0.1:$3/readyz" 20
  sleep 3 # haproxy's `rise 2` at 1 s intervals
}

main() {
  local t0=$SECONDS
  case "${1:-}" in
    --no-setup) ;;
    "") scripts/setup-deploy.sh ;;
    *) die "usage: scripts/test-deploy.sh [--no-setup]" ;;
  esac
  require_root
  make_secrets
  step "image built from deploy/Containerfile (local base, prebuilt binary)" build_image
  step "image run with podman: non-root, read-only, healthy, stomp.js exchange" run_image
  step "manifests: kustomize, kubernetes-validate --strict, checkov" check_manifests
  step "podman kube play of the standalone overlay" kube_play
  step "scale-out behind haproxy with a rolling restart" scale_out
  section "deploy: timings"
  printf '    %s\n' "${TIMINGS[@]}" >&2
  info "total $((SECONDS - t0))s"
}

main "$@"
