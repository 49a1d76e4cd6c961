# Leaves cleanly: pacemaker first (it stops this node's resources: unmount, deactivate,
# lock stop); then a cluster-wide reload, so that the others load the nodelist without
# this node their roster step wrote; then corosync.
service_off pacemaker
if systemctl is-active --quiet corosync; then
  corosync-cfgtool -R >/dev/null || log "corosync-cfgtool -R failed: the others load their corosync.conf at their next reload"
fi
service_off corosync
log "left the cluster"
