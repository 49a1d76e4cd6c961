# The GNBD EXPORT_NAME: DEVICE exported uncached by gnbd_serv (cluster mode, port PORT),
# started at every boot after cman by the init script INIT_NAME. CentOS 5: bash 3.2,
# SysV init.

enabled() { chkconfig --list "$INIT_NAME" 2>/dev/null | grep -q '3:on'; }

[[ -b $DEVICE ]] || die "$DEVICE is not a block device"
# Uncached exports (the only kind GFS may use) need gnbd_serv in cluster mode, i.e. cman.
service cman status >/dev/null 2>&1 || die "cman is not running: an uncached GNBD export needs the cluster manager"

changed=""
if write_file "$INIT_FILE" 0755 "$INIT_SCRIPT"; then changed="$changed init-script"; fi
if ! chkconfig --list "$INIT_NAME" >/dev/null 2>&1; then
  chkconfig --add "$INIT_NAME"
  changed="$changed chkconfig"
fi

if [[ -z $changed ]] && enabled && service "$INIT_NAME" status >/dev/null 2>&1; then
  log "gnbd export $EXPORT_NAME unchanged: $DEVICE, uncached"
  exit 0
fi

changed "exporting $DEVICE as the uncached GNBD $EXPORT_NAME (changed:${changed:- nothing})"
service_on "$INIT_NAME"
service "$INIT_NAME" status >/dev/null || die "GNBD $EXPORT_NAME is not exported uncached from $DEVICE"
log "gnbd export $EXPORT_NAME served on port $PORT"
