if crm_mon -1 >/dev/null 2>&1; then
  removed=$(python3 -c "$CIB_TOOL" remove "$STAGE")
  if [[ -n $removed ]]; then
    while read -r line; do changed "$line"; done <<<"$removed"
  else
    log "stage already removed"
  fi
else
  log "pacemaker is not running here: nothing to remove"
fi
