# Clustered LVM (RHEL/CentOS 5): locking_type 3 and clvmd, which needs cman up.
if [[ $(lvm dumpconfig global/locking_type 2>/dev/null | cut -d= -f2) == 3 ]]; then
  log "cluster locking already enabled"
else
  lvmconf --enable-cluster
  changed "cluster locking enabled (lvmconf --enable-cluster)"
fi
service_on clvmd
log "clvmd running"
