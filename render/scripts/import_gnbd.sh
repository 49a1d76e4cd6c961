# The member imports the GNBDs of SERVER_ADDRESS:PORT; EXPORT_NAME appears as DEVICE.
# The init script INIT_NAME imports again at every boot, after cman, before clvmd.
# CentOS 5: bash 3.2, SysV init.

enabled() { chkconfig --list "$INIT_NAME" 2>/dev/null | grep -q '3:on'; }

changed=""
if write_file "$INIT_FILE" 0755 "$INIT_SCRIPT"; then changed="$changed init-script"; fi
if ! chkconfig --list "$INIT_NAME" >/dev/null 2>&1; then
  chkconfig --add "$INIT_NAME"
  changed="$changed chkconfig"
fi

if [[ -z $changed ]] && enabled && [[ -b $DEVICE ]]; then
  log "gnbd import $EXPORT_NAME unchanged: $DEVICE"
  exit 0
fi

# gnbd_import without -n registers with the cluster manager.
service cman status >/dev/null 2>&1 || die "cman is not running: gnbd_import needs the cluster manager"
changed "importing GNBD $EXPORT_NAME from $SERVER_ADDRESS:$PORT (changed:${changed:- nothing})"
service_on "$INIT_NAME"
[[ -b $DEVICE ]] || die "$DEVICE did not appear"
log "gnbd import $EXPORT_NAME on $DEVICE"
