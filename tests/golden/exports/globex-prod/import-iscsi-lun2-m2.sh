#!/bin/bash
set -euo pipefail
STEP=import-iscsi-lun2
EXPORT_NAME=lun2
TARGET_IQN=iqn.2007-09.org.gfs2-cluster:globex.prod.lun2
INITIATOR_IQN=iqn.2007-09.org.gfs2-cluster:globex.prod.m2
PORTAL=10.23.0.12:3260
DEVICE=/dev/disk/by-path/ip-10.23.0.12:3260-iscsi-iqn.2007-09.org.gfs2-cluster:globex.prod.lun2-lun-0
LOGIN_SERVICE=iscsi
UNIT_NAME=gfs2-iscsi-import-lun2.service
UNIT_FILE=/etc/systemd/system/gfs2-iscsi-import-lun2.service
UNIT='[Unit]
Description=gfs2-cluster iSCSI import lun2: wait for its LUN
Wants=iscsi.service
After=iscsi.service
Before=corosync.service pacemaker.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c '"'"'until [ -b "$$1" ]; do sleep 1; done'"'"' wait-for-device /dev/disk/by-path/ip-10.23.0.12:3260-iscsi-iqn.2007-09.org.gfs2-cluster:globex.prod.lun2-lun-0
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

# The member logs in to TARGET_IQN at PORTAL as INITIATOR_IQN; LUN 0 appears as DEVICE.
# node.startup=automatic lets LOGIN_SERVICE log in again at boot, and UNIT_NAME holds
# the cluster stack back until the LUN is there.

INITIATOR_FILE=/etc/iscsi/initiatorname.iscsi

has_record() { iscsiadm -m node -T "$TARGET_IQN" -p "$PORTAL" >/dev/null 2>&1; }
automatic() { iscsiadm -m node -T "$TARGET_IQN" -p "$PORTAL" 2>/dev/null | grep -qx 'node.startup = automatic'; }
# `iscsiadm -m session` lines: tcp: [1] 10.0.0.1:3260,1 iqn.... (non-flash)
logged_in() {
  iscsiadm -m session 2>/dev/null |
    awk -v p="$PORTAL," -v t="$TARGET_IQN" 'index($3, p) == 1 && $4 == t { found = 1 } END { exit !found }'
}
enabled() { systemctl is-enabled --quiet "$1"; }

changed=()
renamed=0
if write_file "$INITIATOR_FILE" 0644 "InitiatorName=$INITIATOR_IQN"; then
  changed+=(initiator-name)
  renamed=1
fi
if write_file "$UNIT_FILE" 0644 "$UNIT"; then
  changed+=(unit)
  systemctl daemon-reload
fi

if ((${#changed[@]} == 0)) && has_record && automatic && logged_in && [[ -b $DEVICE ]] &&
  enabled "$LOGIN_SERVICE" && enabled "$UNIT_NAME"; then
  log "iscsi import $EXPORT_NAME unchanged: $DEVICE"
  exit 0
fi

changed "logging in to $TARGET_IQN at $PORTAL as $INITIATOR_IQN (changed: ${changed[*]:-nothing})"
# iscsid reads the initiator name when it starts.
if ((renamed)) && systemctl is-active --quiet iscsid; then systemctl restart iscsid; fi
service_on iscsid
if ! has_record; then
  # -o new: records of other targets behind this portal keep their settings.
  iscsiadm -m discoverydb -t sendtargets -p "$PORTAL" -o new --discover >/dev/null
fi
has_record || die "$PORTAL does not offer $TARGET_IQN to $INITIATOR_IQN"
if ! automatic; then
  iscsiadm -m node -T "$TARGET_IQN" -p "$PORTAL" -o update -n node.startup -v automatic
fi
if ! logged_in; then iscsiadm -m node -T "$TARGET_IQN" -p "$PORTAL" --login >/dev/null; fi
service_on "$LOGIN_SERVICE"
wait_until 60 "$DEVICE" test -b "$DEVICE"
service_on "$UNIT_NAME"
log "iscsi import $EXPORT_NAME logged in: $DEVICE"
