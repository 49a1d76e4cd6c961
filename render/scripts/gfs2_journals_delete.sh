# GFS2 cannot drop a journal: the ones a removed member used stay, unused, for a later one.
log "nothing to undo: $DEVICE keeps its journals"
