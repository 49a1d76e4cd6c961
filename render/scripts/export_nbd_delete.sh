# Stops serving the NBD export EXPORT_NAME and removes its unit, config and allow-list.

if [[ ! -e $UNIT_FILE && ! -e $CONFIG_FILE && ! -e $ALLOW_FILE ]] && ! systemctl is-active --quiet "$UNIT_NAME"; then
  log "nbd export $EXPORT_NAME already gone"
  exit 0
fi

log "removing nbd export $EXPORT_NAME"
service_off "$UNIT_NAME"
rm -f "$UNIT_FILE"
systemctl daemon-reload
# The allow-list last: a config without it would serve anyone.
rm -f "$CONFIG_FILE" "$ALLOW_FILE"
changed "nbd export $EXPORT_NAME removed"
