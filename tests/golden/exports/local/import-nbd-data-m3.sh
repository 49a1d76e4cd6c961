#!/bin/bash
set -euo pipefail
STEP=import-nbd-data
EXPORT_NAME=data
SERVER_ADDRESS=10.77.10.11
PORT=10809
DEVICE=/dev/nbd0
MODULES_FILE=/etc/modules-load.d/gfs2-nbd-data.conf
UNIT_NAME=gfs2-nbd-import-data.service
UNIT_FILE=/etc/systemd/system/gfs2-nbd-import-data.service
UNIT='[Unit]
Description=gfs2-cluster NBD import data on /dev/nbd0
Documentation=man:nbd-client(8)
Wants=network-online.target
After=network-online.target
Before=corosync.service pacemaker.service
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStartPre=/sbin/modprobe nbd
ExecStartPre=/bin/sh -c '"'"'until /sbin/nbd-client -l "$$1" "$$2" >/dev/null 2>&1; do sleep 2; done'"'"' wait-for-server 10.77.10.11 10809
ExecStart=/sbin/nbd-client -N data 10.77.10.11 10809 /dev/nbd0 -nonetlink -persist -nofork
ExecStartPost=/bin/sh -c '"'"'until /sbin/nbd-client -c "$$1" >/dev/null; do sleep 1; done'"'"' wait-for-device /dev/nbd0
ExecStop=/sbin/nbd-client -nonetlink -d /dev/nbd0
Restart=on-failure
RestartSec=5
TimeoutStartSec=120

[Install]
WantedBy=multi-user.target'
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

# The member's attachment of the NBD export EXPORT_NAME from SERVER_ADDRESS:PORT on
# DEVICE, by a unit that brings it back at every boot before the cluster stack.

attached() { nbd-client -c "$DEVICE" >/dev/null 2>&1; }
# Held by device-mapper (the shared VG's LVs) or mounted: detaching would fail the I/O.
holders() { ls -A "/sys/block/${DEVICE#/dev/}/holders" 2>/dev/null; }
importing() { systemctl is-enabled --quiet "$UNIT_NAME" && attached; }

changed=()
unit_changed=0
if write_file "$MODULES_FILE" 0644 nbd; then changed+=(modules-load); fi
if write_file "$UNIT_FILE" 0644 "$UNIT"; then
  changed+=(unit)
  unit_changed=1
  systemctl daemon-reload
fi

if ((${#changed[@]} == 0)) && importing; then
  log "nbd import $EXPORT_NAME unchanged: $DEVICE attached to $SERVER_ADDRESS:$PORT"
  exit 0
fi

log "attaching nbd export $EXPORT_NAME from $SERVER_ADDRESS:$PORT on $DEVICE (changed: ${changed[*]:-nothing})"
if ((unit_changed)) && systemctl is-active --quiet "$UNIT_NAME"; then
  [[ -z $(holders) ]] || die "$DEVICE is in use ($(holders | tr '\n' ' ')): stop the cluster on this member, then run again"
  systemctl restart "$UNIT_NAME"
  note_change "restarted $UNIT_NAME"
fi
# Starting waits (the unit's ExecStartPost) until the device is connected.
service_on "$UNIT_NAME"
wait_until 30 "$DEVICE connected" attached
log "nbd export $EXPORT_NAME attached on $DEVICE"
