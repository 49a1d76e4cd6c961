#!/usr/bin/env bash
# Key files for stacks that keep their secrets in .state/secrets/DIR (the local stack):
# created once, never replaced - replacing them would lock the stack out of its guests.
set -euo pipefail

dir=$1
umask 077
mkdir -p "$dir"
if [[ ! -s $dir/id_ed25519 ]]; then
  ssh-keygen -q -t ed25519 -N '' -C "gfs2-cluster $(basename "$dir")" -f "$dir/id_ed25519"
  echo "secrets: created SSH key $dir/id_ed25519"
fi
if [[ ! -s $dir/fence_xvm.key ]]; then
  head -c 4096 /dev/urandom >"$dir/fence_xvm.key"
  echo "secrets: created fence_xvm key $dir/fence_xvm.key"
fi
if [[ ! -s $dir/corosync.key ]]; then
  head -c 256 /dev/urandom >"$dir/corosync.key"
  echo "secrets: created corosync authkey $dir/corosync.key"
fi
