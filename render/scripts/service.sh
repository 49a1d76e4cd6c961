# A management daemon on this node (pcsd, or ricci with its SELinux domain permissive).
service_on "$SERVICE"
if [[ -n $PERMISSIVE_DOMAIN ]] && command -v semanage >/dev/null && [[ $(getenforce) != Disabled ]]; then
  semanage permissive -l | grep -qx "$PERMISSIVE_DOMAIN" || semanage permissive -a "$PERMISSIVE_DOMAIN"
  log "SELinux domain $PERMISSIVE_DOMAIN permissive, the rest stays $(getenforce)"
fi
log "$SERVICE running"
