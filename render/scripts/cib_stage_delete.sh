if crm_mon -1 >/dev/null 2>&1; then
  python3 -c "$CIB_TOOL" remove "$STAGE"
  log "stage removed"
else
  log "pacemaker is not running here: nothing to remove"
fi
