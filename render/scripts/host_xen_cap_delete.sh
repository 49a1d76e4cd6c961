log "the cap goes with the domain"
