# Pacemaker first: it stops this node's resources (unmount, deactivate, lock stop).
service_off pacemaker
service_off corosync
rm -f /etc/corosync/corosync.conf /etc/corosync/authkey
log "left the cluster"
