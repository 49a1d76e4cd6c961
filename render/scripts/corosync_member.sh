# Joins the cluster: corosync and pacemaker started, and enabled so that a fenced member
# rejoins at boot. Its config is there already (the roster step on every member).
log "start"
[[ -s /etc/corosync/corosync.conf && -s /etc/corosync/authkey ]] \
  || die "no /etc/corosync/corosync.conf or authkey here: the roster step writes them first"
service_on corosync
service_on pacemaker
wait_until 120 "corosync to join the cluster" corosync-cfgtool -s
log "done: corosync and pacemaker running"
