#!/bin/bash
set -euo pipefail
STEP=export-gnbd-data
EXPORT_NAME=data
DEVICE=/dev/xvdb
PORT=14567
INIT_NAME=gfs2-gnbd-export-data
INIT_FILE=/etc/init.d/gfs2-gnbd-export-data
INIT_SCRIPT='#!/bin/bash
#
# gfs2-gnbd-export-data: serves GNBD data uncached (gfs2-cluster).
#
# chkconfig: 345 22 78
# description: gfs2-cluster: serves GNBD data uncached

LOCK_FILE=/var/lock/subsys/gfs2-gnbd-export-data
EXPORT_NAME=data
DEVICE=/dev/xvdb
PORT=14567

PATH=/sbin:/usr/sbin:/bin:/usr/bin

# `gnbd_export -l` prints "Server[N] : NAME" and then "file : PATH", "cached : no", ...
export_field() {
  gnbd_export -l 2>/dev/null |
    awk -v n="$EXPORT_NAME" -v f="$1" '"'"'$1 ~ /^Server\[/ { cur = $3 } cur == n && $1 == f { print $3 }'"'"'
}

exported() {
  [ "$(export_field file)" = "$DEVICE" ] && [ "$(export_field cached)" = no ]
}

# Every gnbd command here may leave a daemon behind (gnbd_serv, gnbd_clusterd) holding
# whatever output it was given: /dev/null, so no caller (an SSH session) waits for it.
quiet() { "$@" </dev/null >/dev/null 2>&1; }

start() {
  # Cluster mode (no -n): gnbd_serv exports uncached devices only when cman runs.
  pidof gnbd_serv >/dev/null || quiet gnbd_serv -p "$PORT" || return 1
  local file
  file=$(export_field file)
  if [ -z "$file" ]; then
    # No -c: uncached (gnbd_export'"'"'s default), so every write reaches the disk.
    quiet gnbd_export -d "$DEVICE" -e "$EXPORT_NAME" || { echo "gnbd_export failed, see syslog" >&2; return 1; }
  elif [ "$file" != "$DEVICE" ]; then
    echo "GNBD $EXPORT_NAME exports $file, not $DEVICE" >&2
    return 1
  fi
  exported || { echo "GNBD $EXPORT_NAME is exported cached" >&2; return 1; }
  touch "$LOCK_FILE"
}

stop() {
  if [ -n "$(export_field file)" ]; then
    quiet gnbd_export -r "$EXPORT_NAME" || return 1
  fi
  # gnbd_serv goes with the server'"'"'s last export.
  if ! gnbd_export -l 2>/dev/null | grep -q '"'"'^Server\['"'"'; then
    quiet gnbd_serv -k || true
  fi
  rm -f "$LOCK_FILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop && start ;;
  status)
    if exported; then echo "GNBD $EXPORT_NAME exported from $DEVICE, uncached"; else
      echo "GNBD $EXPORT_NAME not exported"
      exit 3
    fi
    ;;
  *)
    echo "Usage: $0 {start|stop|restart|status}" >&2
    exit 2
    ;;
esac
'
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

# Unexports the GNBD EXPORT_NAME and removes its init script; gnbd_serv stops with the
# server's last export.

exported() {
  gnbd_export -l 2>/dev/null | awk -v n="$EXPORT_NAME" '$1 ~ /^Server\[/ && $3 == n { f = 1 } END { exit !f }'
}

if [[ ! -e $INIT_FILE ]] && ! exported; then
  log "gnbd export $EXPORT_NAME already gone"
  exit 0
fi

changed "unexporting GNBD $EXPORT_NAME"
if [[ -e $INIT_FILE ]]; then
  service_off "$INIT_NAME"
  chkconfig --del "$INIT_NAME" 2>/dev/null || true
  rm -f "$INIT_FILE"
fi
if exported; then gnbd_export -r "$EXPORT_NAME" >/dev/null; fi
log "gnbd export $EXPORT_NAME removed"
