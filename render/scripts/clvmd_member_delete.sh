service_off clvmd
lvmconf --disable-cluster
log "cluster locking disabled"
