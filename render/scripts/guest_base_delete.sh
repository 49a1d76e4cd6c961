# Leaves the guest as the image made it (the guest itself is deleted next).
if grep -q '^# gfs2-cluster: begin$' /etc/hosts; then
  sed -i '/^# gfs2-cluster: begin$/,/^# gfs2-cluster: end$/d' /etc/hosts
  changed "removed the cluster from /etc/hosts"
else
  log "nothing to remove"
fi
