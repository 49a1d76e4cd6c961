# Removes the imported GNBD EXPORT_NAME and its init script.

holders() {
  [[ -e $DEVICE ]] || return 0
  ls -A "/sys/block/$(basename "$(readlink -f "$DEVICE")")/holders" 2>/dev/null
}

if [[ ! -e $INIT_FILE && ! -b $DEVICE ]]; then
  log "gnbd import $EXPORT_NAME already gone"
  exit 0
fi
[[ -z $(holders) ]] || die "$DEVICE is in use ($(holders | tr '\n' ' ')): stop the cluster on this member first"

changed "removing the imported GNBD $EXPORT_NAME"
if [[ -e $INIT_FILE ]]; then
  service_off "$INIT_NAME"
  chkconfig --del "$INIT_NAME" 2>/dev/null || true
  rm -f "$INIT_FILE"
fi
if [[ -b $DEVICE ]]; then gnbd_import -r "$EXPORT_NAME" >/dev/null; fi
log "gnbd import $EXPORT_NAME removed"
