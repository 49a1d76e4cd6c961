service_off "$SERVICE"
if [[ -n $PERMISSIVE_DOMAIN ]] && command -v semanage >/dev/null && semanage permissive -l | grep -qx "$PERMISSIVE_DOMAIN"; then
  semanage permissive -d "$PERMISSIVE_DOMAIN"
  note_change "SELinux domain $PERMISSIVE_DOMAIN enforcing again"
fi
log "$SERVICE stopped"
