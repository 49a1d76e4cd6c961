service_off clvmd
if [[ $(lvm dumpconfig global/locking_type 2>/dev/null | cut -d= -f2) == 3 ]]; then
  lvmconf --disable-cluster
  changed "cluster locking disabled"
else
  log "cluster locking already disabled"
fi
