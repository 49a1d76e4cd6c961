# Unexports the GNBD EXPORT_NAME and removes its init script; gnbd_serv stops with the
# server's last export.

exported() {
  gnbd_export -l 2>/dev/null | awk -v n="$EXPORT_NAME" '$1 ~ /^Server\[/ && $3 == n { f = 1 } END { exit !f }'
}

if [[ ! -e $INIT_FILE ]] && ! exported; then
  log "gnbd export $EXPORT_NAME already gone"
  exit 0
fi

changed "unexporting GNBD $EXPORT_NAME"
if [[ -e $INIT_FILE ]]; then
  service_off "$INIT_NAME"
  chkconfig --del "$INIT_NAME" 2>/dev/null || true
  rm -f "$INIT_FILE"
fi
if exported; then gnbd_export -r "$EXPORT_NAME" >/dev/null; fi
log "gnbd export $EXPORT_NAME removed"
