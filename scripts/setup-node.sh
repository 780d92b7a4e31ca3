#!/usr/bin/env bash
# Installs the Node test dependencies (stomp.js clients, ws, sockjs-client, playwright-core)
# exactly as locked in tests/js/package-lock.json.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
  command -v node >/dev/null || apt_install nodejs npm
  command -v npm >/dev/null || apt_install npm
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  (( major >= 20 )) || die "Node.js 20 or newer is needed (found $(node --version))"
  section "npm ci in tests/js (node $(node --version), npm $(npm --version))"
  cd "$REPO_ROOT/tests/js"
  # A lockfile that has not changed since the last install is already in node_modules.
  if [[ -f node_modules/.package-lock.json ]] && cmp -s package-lock.json node_modules/.stompgate-lock; then
    info "node_modules is up to date with package-lock.json"
    return 0
  fi
  timeout 600 npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.stompgate-lock
}

main "$@"
