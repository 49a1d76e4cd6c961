#!/usr/bin/env bash
# Before every job of .gitlab-ci.yml: what `make setup` itself needs (make, Python, git, Go
# for the toolchain), installed only when missing - on a runner that has them, nothing runs.
set -euo pipefail

missing=()
for pkg in make python3 python3-venv git sudo golang-go ca-certificates; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  echo "ci-bootstrap: make, python3, git, go: installed"
  exit 0
fi
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
echo "ci-bootstrap: installing ${missing[*]}"
"${sudo[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
