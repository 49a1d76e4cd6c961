# Removes the LIO target TARGET_IQN and its backstore BACKSTORE, then saves the config
# without them. The restore service stays: stopping it would clear every other target.

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

if [[ ! -d $CONFIGFS/iscsi/$TARGET_IQN ]] && ! backstore_dir >/dev/null; then
  log "iscsi target $TARGET_IQN already gone"
  exit 0
fi

changed "removing iscsi target $TARGET_IQN"
# Deleting the target takes its portal, LUN and ACLs with it.
if [[ -d $CONFIGFS/iscsi/$TARGET_IQN ]]; then tcli /iscsi delete "$TARGET_IQN"; fi
if backstore_dir >/dev/null; then tcli /backstores/block delete "$BACKSTORE"; fi
tcli saveconfig
log "iscsi target $TARGET_IQN removed"
