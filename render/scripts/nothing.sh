log "nothing to undo"
