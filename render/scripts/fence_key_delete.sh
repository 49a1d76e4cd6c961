if [[ -e $KEY_PATH ]]; then
  rm -f "$KEY_PATH"
  changed "fence key removed"
else
  log "no fence key to remove"
fi
