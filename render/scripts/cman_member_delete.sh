for service in gfs2 clvmd cman; do service_off "$service"; done
if [[ -e /etc/cluster/cluster.conf ]]; then rm -f /etc/cluster/cluster.conf && note_change "removed cluster.conf"; fi
log "left the cluster"
