#!/usr/bin/env bash
# Everything the program and its tests need on this machine; idempotent and cached.
set -euo pipefail

# shellcheck source=tools/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

log() { printf 'setup: %s\n' "$*"; }

apt_packages() {
  local wanted missing=()
  mapfile -t wanted < <(grep -Ev '^\s*(#|$)' "$GFS2_ROOT/tools/apt-packages.txt")
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then
    log "Debian packages: all ${#wanted[@]} installed"
    return
  fi
  log "Debian packages: installing ${missing[*]}"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

python_venv() {
  local venv=$GFS2_ROOT/.venv stamp want
  stamp=$venv/.requirements.sha256
  want=$(sha256sum "$GFS2_ROOT/requirements.txt" | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    log "Python venv: up to date"
    return
  fi
  log "Python venv: installing requirements.txt"
  [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$GFS2_ROOT/requirements.txt"
  echo "$want" >"$stamp"
}

# The local file backend and its passphrase: created once, never replaced.
local_state() {
  mkdir -p "$GFS2_STATE_DIR/backend"
  if [[ ${PULUMI_CONFIG_PASSPHRASE_FILE:-} == "$GFS2_STATE_DIR/passphrase" && ! -s $PULUMI_CONFIG_PASSPHRASE_FILE ]]; then
    (umask 077 && head -c 32 /dev/urandom | base64 >"$PULUMI_CONFIG_PASSPHRASE_FILE")
    log "created the passphrase of local stacks in $PULUMI_CONFIG_PASSPHRASE_FILE"
  fi
}

main() {
  local started=$SECONDS
  apt_packages
  python_venv
  "$GFS2_ROOT/tools/toolchain.sh"
  local_state
  if [[ $(id -u) -eq 0 ]]; then
    "$GFS2_ROOT/tools/libvirtd.sh"
  else
    log "not root: libvirtd for the local stack is not started"
  fi
  log "done in $((SECONDS - started)) s"
}

main "$@"
