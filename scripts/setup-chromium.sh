#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (driven by playwright-core). Never downloads
# a browser build of its own.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
  if [[ -x /usr/bin/chromium ]]; then
    info "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
    return 0
  fi
  require_root
  apt_install chromium
  [[ -x /usr/bin/chromium ]] || die "/usr/bin/chromium missing after installing chromium"
}

main "$@"
