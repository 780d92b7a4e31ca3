# shellcheck shell=bash
# Shared helpers for the stompgate scripts: section headers and bounded port waits.
# Sourced, never run: `source "$(dirname "$0")/lib.sh"`.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT

# Prints a visible section header to stderr.
section() {
  if [[ -t 2 ]]; then
    printf '\n\033[1m==> %s\033[0m\n' "$*" >&2
  else
    printf '\n==> %s\n' "$*" >&2
  fi
}

# Prints an informational line to stderr.
info() {
  printf '    %s\n' "$*" >&2
}

# Prints an error and exits 1.
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Prints a TCP port on 127.0.0.1 that was free a moment ago (for a process that cannot be
# told to listen on port 0 and report it, like websocat).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT SECONDS NAME: waits until the port accepts connections, or dies.
wait_port() {
  local port=$1 limit=$2 name=$3 waited=0
  until port_open "$port"; do
    if (( waited >= limit )); then
      die "$name did not open 127.0.0.1:$port within ${limit}s"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  info "$name is accepting connections on 127.0.0.1:$port"
}

# Fails unless running as root (the broker set-up scripts install packages and start services).
require_root() {
  [[ $(id -u) -eq 0 ]] || die "$0 must run as root (it installs packages and starts services)"
}

# Runs apt-get non-interactively, waiting (bounded) for another apt/dpkg run to release its lock.
apt_get() {
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"
}

# True when the Debian package $1 is installed.
pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Installs Debian packages that are not installed yet; runs `apt-get update` first if the
# install fails (a fresh machine has no package lists).
apt_install() {
  local missing=() p
  for p in "$@"; do
    pkg_installed "$p" || missing+=("$p")
  done
  (( ${#missing[@]} == 0 )) && return 0
  section "apt-get install ${missing[*]}"
  apt_get install -y "${missing[@]}" \
    || { apt_get update && apt_get install -y "${missing[@]}"; }
}

# PIDS: the background processes a script started (start_bg appends to it). kill_started
# sends them SIGTERM, gives them up to 5 s to exit, then SIGKILLs what is left and reaps all;
# scripts run it on EXIT (`trap kill_started EXIT`, or from their own cleanup).
PIDS=()
kill_started() {
  local p alive
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

# start_bg NAME CMD...: starts CMD in the background (stdout/stderr in $WORK/NAME.out/.err),
# appends its pid to PIDS and sets LASTPID, waits up to 30 s for its first `listening ROLE ADDR`
# line with ROLE matching START_BG_ROLES (a grep BRE alternation; default `client\|fake-broker`)
# and sets ADDR to that address. Dies with the command's last stderr lines if it never listens.
start_bg() {
  local name=$1 roles=${START_BG_ROLES:-'client\|fake-broker'}
  shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  LASTPID=$!
  PIDS+=("$LASTPID")
  ADDR=""
  for _ in $(seq 1 300); do
    ADDR=$(grep -m1 "^listening \\($roles\\) " "$WORK/$name.out" 2>/dev/null | awk '{print $3}' || true)
    [[ -n $ADDR ]] && return 0
    sleep 0.1
  done
  die "$name did not start: $(tail -3 "$WORK/$name.err")"
}
