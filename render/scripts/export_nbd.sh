# The NBD export EXPORT_NAME: DEVICE served on LISTEN_ADDRESS:PORT to the members in
# ALLOW_LIST only, by this export's own nbd-server unit.

listening() { ss -Hltn "sport = :$PORT" | grep -qF -- "$LISTEN_ADDRESS:$PORT"; }
serving() { systemctl is-active --quiet "$UNIT_NAME" && systemctl is-enabled --quiet "$UNIT_NAME"; }

[[ -b $DEVICE ]] || die "$DEVICE is not a block device"

changed=()
restart=0
# The allow-list before the config: without its file nbd-server lets anyone connect.
# nbd-server reads it at every connection, so a new member list needs no restart.
if write_file "$ALLOW_FILE" 0644 "$ALLOW_LIST"; then changed+=(allow-list); fi
if write_file "$CONFIG_FILE" 0644 "$CONFIG"; then changed+=(config); restart=1; fi
if write_file "$UNIT_FILE" 0644 "$UNIT"; then
  changed+=(unit)
  restart=1
  systemctl daemon-reload
fi

if ((${#changed[@]} == 0)) && serving && listening; then
  log "nbd export $EXPORT_NAME unchanged: $DEVICE on $LISTEN_ADDRESS:$PORT"
  exit 0
fi

log "serving nbd export $EXPORT_NAME ($DEVICE) on $LISTEN_ADDRESS:$PORT (changed: ${changed[*]:-nothing})"
if ((restart)) && systemctl is-active --quiet "$UNIT_NAME"; then
  # Members drop their connection here; nbd-client -persist reconnects them.
  systemctl restart "$UNIT_NAME"
  note_change "restarted $UNIT_NAME"
fi
service_on "$UNIT_NAME"
wait_until 30 "nbd-server on $LISTEN_ADDRESS:$PORT" listening
log "nbd export $EXPORT_NAME served on $LISTEN_ADDRESS:$PORT to $(grep -c . <<<"$ALLOW_LIST") members"
