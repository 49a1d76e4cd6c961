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
