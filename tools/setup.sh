#!/usr/bin/env bash
# Everything the program and its tests need on this machine; idempotent and cached.
set -euo pipefail

# shellcheck source=tools/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

log() { printf 'setup: %s\n' "$*"; }
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)

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

# gitlab-ci-local, which runs .gitlab-ci.yml in the pipeline's tests (tests/team), from the
# npm registry into the project's cache: a new clone finds it, nothing is installed globally.
gitlab_ci_local() {
  local want=$GITLAB_CI_LOCAL_VERSION dir
  dir=$(dirname "$(dirname "$(dirname "$GFS2_GITLAB_CI_LOCAL")")")
  if [[ -x $GFS2_GITLAB_CI_LOCAL && $("$GFS2_GITLAB_CI_LOCAL" --version 2>/dev/null) == "$want" ]]; then
    log "gitlab-ci-local $want: installed"
    return
  fi
  if ! command -v npm >/dev/null; then
    # Debian's nodejs comes without npm (a nodejs build that bundles npm has it already).
    log "Debian packages: installing npm"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends npm >/dev/null
  fi
  log "gitlab-ci-local $want: installing from npm into $dir"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "gitlab-ci-local@$want" >/dev/null
  [[ $("$GFS2_GITLAB_CI_LOCAL" --version) == "$want" ]] || { log "gitlab-ci-local $want: not runnable after install"; exit 1; }
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
  gitlab_ci_local
  local_state
  if [[ $(id -u) -eq 0 ]]; then
    "$GFS2_ROOT/tools/libvirtd.sh"
  else
    log "not root: libvirtd for the local stack is not started"
  fi
  log "done in $((SECONDS - started)) s"
}

main "$@"
