# After this member has left (its join step's delete): its corosync config and authkey go.
if systemctl is-active --quiet corosync; then
  die "corosync still runs here: the member leaves first (its join step)"
fi
for f in /etc/corosync/corosync.conf /etc/corosync/authkey; do
  if [[ -e $f ]]; then rm -f "$f" && note_change "removed $f"; fi
done
log "config removed"
