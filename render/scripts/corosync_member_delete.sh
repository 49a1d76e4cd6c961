# Pacemaker first: it stops this node's resources (unmount, deactivate, lock stop).
service_off pacemaker
service_off corosync
for f in /etc/corosync/corosync.conf /etc/corosync/authkey; do
  if [[ -e $f ]]; then rm -f "$f" && note_change "removed $f"; fi
done
log "left the cluster"
