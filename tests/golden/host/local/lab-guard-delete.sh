#!/bin/bash
set -euo pipefail
STEP=lab-guard
CIDR=10.77.10.0/24
BRIDGE=g2br10
SUPPRESS_PREFIXLENGTH=23
LOOKUP_PRIORITY=4242
BLOCK_PRIORITY=4243
# Helpers prepended to every node script (render/script.py). Scripts check, then act:
# a second run changes nothing and says so in one line.

log() { printf 'gfs2-cluster[%s@%s]: %s\n' "$STEP" "$(hostname -s)" "$*"; }
die() { log "error: $*" >&2; exit 1; }

# What this run changed on the node. Every successful run ends with one result line,
# "result: changed: WHAT; WHAT" or "result: unchanged"; a second run of the same script
# must say unchanged (the graph runner's rerun check reads this line).
CHANGES=()
# Files removed at exit, whatever the outcome (temporary copies of keys and configs).
CLEANUP=()
note_change() { CHANGES+=("$*"); }
changed() { note_change "$*"; log "$*"; }
finish() {
  local rc=$?
  if ((${#CLEANUP[@]})); then rm -f -- "${CLEANUP[@]}"; fi
  if ((rc == 0)); then
    if ((${#CHANGES[@]})); then
      log "result: changed: $(IFS=';' && echo "${CHANGES[*]}")"
    else
      log "result: unchanged"
    fi
  fi
}
trap finish EXIT

# write_file PATH MODE CONTENT: replaces PATH only when CONTENT differs.
# Returns 0 when it wrote, 1 when PATH already had that content.
write_file() {
  local path=$1 mode=$2 content=$3 tmp
  if [[ -f $path ]] && [[ $(cat "$path"; echo x) == "$content"$'\n'x ]]; then
    return 1
  fi
  mkdir -p "$(dirname "$path")"
  tmp=$(mktemp "$path.XXXXXX")
  printf '%s\n' "$content" >"$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$path"
  note_change "wrote $path"
}

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND once a second.
wait_until() {
  local timeout=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${timeout} s waiting for $what"
    sleep 1
  done
}

pid_gone() { ! kill -0 "$1" 2>/dev/null; }

# A service the cluster owns: started and enabled, so a fenced member rejoins at boot.
# systemd today; SysV init (service/chkconfig) on RHEL/CentOS 5.
service_on() {
  if command -v systemctl >/dev/null; then
    if ! systemctl is-enabled --quiet "$1" 2>/dev/null; then
      systemctl enable --quiet "$1"
      note_change "enabled $1"
    fi
    if ! systemctl is-active --quiet "$1"; then
      systemctl start "$1"
      note_change "started $1"
    fi
  else
    if ! chkconfig --list "$1" 2>/dev/null | grep -q '3:on'; then
      chkconfig "$1" on
      note_change "enabled $1"
    fi
    if ! service "$1" status >/dev/null 2>&1; then
      service "$1" start
      note_change "started $1"
    fi
  fi
}

service_off() {
  if command -v systemctl >/dev/null; then
    if systemctl is-active --quiet "$1" 2>/dev/null; then
      systemctl stop "$1"
      note_change "stopped $1"
    fi
    if systemctl is-enabled --quiet "$1" 2>/dev/null; then
      systemctl disable --quiet "$1"
      note_change "disabled $1"
    fi
  else
    if service "$1" status >/dev/null 2>&1; then
      service "$1" stop
      note_change "stopped $1"
    fi
    if chkconfig --list "$1" 2>/dev/null | grep -q ':on'; then
      chkconfig "$1" off
      note_change "disabled $1"
    fi
  fi
}

# fstab_without MOUNT_POINT: /etc/fstab minus the gfs2 line for MOUNT_POINT.
fstab_without() {
  awk -v mp="$1" '!($2 == mp && $3 == "gfs2")' /etc/fstab
}

# The rules of host_lab_guard.sh, the block rule first: without the lookup rule it would
# cut the bridge off. has_rule as there.
has_rule() { ip -4 rule show | sed 's/[[:space:]]\+/ /g; s/ $//' | grep -xF -- "$1: $2" >/dev/null; }
if has_rule "$BLOCK_PRIORITY" "from all to $CIDR unreachable"; then
  while has_rule "$BLOCK_PRIORITY" "from all to $CIDR unreachable"; do
    ip rule del priority "$BLOCK_PRIORITY" to "$CIDR" unreachable
  done
  changed "removed rule $BLOCK_PRIORITY: $CIDR unreachable"
fi
lookup="from all to $CIDR lookup main suppress_prefixlength $SUPPRESS_PREFIXLENGTH"
if has_rule "$LOOKUP_PRIORITY" "$lookup"; then
  while has_rule "$LOOKUP_PRIORITY" "$lookup"; do
    ip rule del priority "$LOOKUP_PRIORITY" to "$CIDR" lookup main suppress_prefixlength "$SUPPRESS_PREFIXLENGTH"
  done
  changed "removed rule $LOOKUP_PRIORITY: $CIDR lookup"
fi
log "done"
