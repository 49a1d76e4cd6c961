if [[ -e $KEY_PATH ]]; then
  rm -f "$KEY_PATH"
  log "fence key removed"
else
  log "no fence key to remove"
fi
