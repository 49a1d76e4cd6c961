#!/bin/bash
set -euo pipefail
STEP=export-iscsi-lun1
CONFIGFS=/sys/kernel/config/target
BACKSTORE=lun1
DEVICE=/dev/vdb
TARGET_IQN=iqn.2007-09.org.gfs2-cluster:globex.prod.lun1
PORTAL_ADDRESS=10.23.0.11
PORT=3260
INITIATORS='iqn.2007-09.org.gfs2-cluster:globex.prod.m1
iqn.2007-09.org.gfs2-cluster:globex.prod.m2
iqn.2007-09.org.gfs2-cluster:globex.prod.m3
iqn.2007-09.org.gfs2-cluster:globex.prod.m4'
RESTORE_SERVICE=target
SAVE_FILE=/etc/target/saveconfig.json
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

# The LIO target TARGET_IQN: LUN 0 is the block backstore BACKSTORE (DEVICE), one portal
# PORTAL_ADDRESS:PORT, one ACL per initiator in INITIATORS and no other; saved so that
# RESTORE_SERVICE brings it back at boot. Reads configfs to check, runs targetcli to act.

TPG=$CONFIGFS/iscsi/$TARGET_IQN/tpgt_1
TPG_UI=/iscsi/$TARGET_IQN/tpg1
mapfile -t initiators <<<"$INITIATORS"
changed=()

# targetcli joins its arguments into one command line and parses that again.
[[ $DEVICE =~ ^/[[:alnum:]._/:+-]+$ ]] || die "device path $DEVICE cannot be passed to targetcli"
[[ -b $DEVICE ]] || die "$DEVICE is not a block device"

tcli() {
  local out
  out=$(targetcli "$@" 2>&1) || die "targetcli $*: $out"
}

backstore_dir() {
  local dir
  for dir in "$CONFIGFS"/core/iblock_*/"$BACKSTORE"; do
    [[ -d $dir ]] && { printf '%s\n' "$dir"; return 0; }
  done
  return 1
}

wanted_initiator() {
  local iqn
  for iqn in "${initiators[@]}"; do [[ $iqn == "$1" ]] && return 0; done
  return 1
}

ensure_backstore() {
  local dir
  if dir=$(backstore_dir); then
    [[ $(<"$dir/udev_path") == "$DEVICE" ]] || die "backstore $BACKSTORE serves $(<"$dir/udev_path"), not $DEVICE: delete the export first"
    return
  fi
  tcli /backstores/block create "name=$BACKSTORE" "dev=$DEVICE"
  changed+=(backstore)
}

ensure_target() {
  [[ -d $CONFIGFS/iscsi/$TARGET_IQN ]] && return
  tcli /iscsi create "$TARGET_IQN"
  changed+=(target)
}

# targetcli adds a portal on 0.0.0.0:3260 to a new target; ours listens on one address.
ensure_portal() {
  local np name
  for np in "$TPG"/np/*; do
    name=${np##*/}
    [[ -d $np && $name != "$PORTAL_ADDRESS:$PORT" ]] || continue
    tcli "$TPG_UI/portals" delete "${name%:*}" "${name##*:}"
    changed+=("portal $name removed")
  done
  [[ -d $TPG/np/$PORTAL_ADDRESS:$PORT ]] && return
  tcli "$TPG_UI/portals" create "$PORTAL_ADDRESS" "$PORT"
  changed+=(portal)
}

ensure_lun() {
  [[ -d $TPG/lun/lun_0 ]] && return
  tcli "$TPG_UI/luns" create "/backstores/block/$BACKSTORE" lun=0 add_mapped_luns=false
  changed+=(lun)
}

ensure_acls() {
  local iqn dir
  for iqn in "${initiators[@]}"; do
    if [[ ! -d $TPG/acls/$iqn ]]; then
      tcli "$TPG_UI/acls" create "$iqn" add_mapped_luns=false
      changed+=("acl $iqn")
    fi
    if [[ ! -d $TPG/acls/$iqn/lun_0 ]]; then
      tcli "$TPG_UI/acls/$iqn" create mapped_lun=0 tpg_lun_or_backstore=0
      changed+=("lun for $iqn")
    fi
  done
  for dir in "$TPG"/acls/*; do
    [[ -d $dir ]] || continue
    iqn=${dir##*/}
    wanted_initiator "$iqn" && continue
    tcli "$TPG_UI/acls" delete "$iqn"
    changed+=("acl $iqn removed")
  done
}

# Only the ACLs above may log in: no demo mode, no ACLs made up for unknown initiators.
ensure_no_demo_mode() {
  [[ $(<"$TPG/attrib/generate_node_acls") == 0 ]] && return
  tcli "$TPG_UI" set attribute generate_node_acls=0
  changed+=(generate_node_acls=0)
}

ensure_enabled() {
  [[ $(<"$TPG/enable") == 1 ]] && return
  tcli "$TPG_UI" enable
  changed+=(enabled)
}

saved() { [[ -f $SAVE_FILE ]] && grep -qF -- "\"$TARGET_IQN\"" "$SAVE_FILE"; }

configured() {
  backstore_dir >/dev/null && [[ -d $TPG/np/$PORTAL_ADDRESS:$PORT && -d $TPG/lun/lun_0 ]] || return 1
  local iqn dir
  for iqn in "${initiators[@]}"; do [[ -d $TPG/acls/$iqn/lun_0 ]] || return 1; done
  for dir in "$TPG"/acls/* "$TPG"/np/*; do
    [[ -d $dir ]] || continue
    case ${dir%/*} in
      */acls) wanted_initiator "${dir##*/}" || return 1 ;;
      */np) [[ ${dir##*/} == "$PORTAL_ADDRESS:$PORT" ]] || return 1 ;;
    esac
  done
  [[ $(<"$TPG/attrib/generate_node_acls") == 0 && $(<"$TPG/enable") == 1 ]]
}

restore_enabled() { systemctl is-enabled --quiet "$RESTORE_SERVICE"; }

if configured && saved && restore_enabled; then
  log "iscsi target $TARGET_IQN unchanged: $DEVICE to ${#initiators[@]} initiators on $PORTAL_ADDRESS:$PORT"
  exit 0
fi

changed "configuring iscsi target $TARGET_IQN ($DEVICE) on $PORTAL_ADDRESS:$PORT"
# Enabled, not started: starting it now would clear the live LIO config and load the file.
restore_enabled || systemctl enable --quiet "$RESTORE_SERVICE"
ensure_backstore
ensure_target
ensure_portal
ensure_lun
ensure_acls
ensure_no_demo_mode
ensure_enabled
if ((${#changed[@]} > 0)) || ! saved; then tcli saveconfig; fi
log "iscsi target $TARGET_IQN serves $DEVICE to ${#initiators[@]} initiators (changed: ${changed[*]:-nothing})"
