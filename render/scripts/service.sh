# A management daemon on this node (pcsd, or ricci with its SELinux domain permissive).
service_on "$SERVICE"
if [[ -n $PERMISSIVE_DOMAIN ]] && command -v semanage >/dev/null && [[ $(getenforce) != Disabled ]]; then
  if ! semanage permissive -l | grep -qx "$PERMISSIVE_DOMAIN"; then
    semanage permissive -a "$PERMISSIVE_DOMAIN"
    note_change "SELinux domain $PERMISSIVE_DOMAIN made permissive"
  fi
  log "SELinux domain $PERMISSIVE_DOMAIN permissive, the rest stays $(getenforce)"
fi
log "$SERVICE running"
