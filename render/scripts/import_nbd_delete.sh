# Detaches the NBD export EXPORT_NAME from DEVICE and removes its unit.

attached() { nbd-client -c "$DEVICE" >/dev/null 2>&1; }
holders() { ls -A "/sys/block/${DEVICE#/dev/}/holders" 2>/dev/null; }

if [[ ! -e $UNIT_FILE && ! -e $MODULES_FILE ]] && ! attached; then
  log "nbd import $EXPORT_NAME already gone"
  exit 0
fi
[[ -z $(holders) ]] || die "$DEVICE is in use ($(holders | tr '\n' ' ')): stop the cluster on this member first"

log "detaching nbd export $EXPORT_NAME from $DEVICE"
service_off "$UNIT_NAME"
if attached; then nbd-client -nonetlink -d "$DEVICE" >/dev/null; fi
rm -f "$UNIT_FILE" "$MODULES_FILE"
systemctl daemon-reload
changed "nbd export $EXPORT_NAME detached"
