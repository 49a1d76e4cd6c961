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
