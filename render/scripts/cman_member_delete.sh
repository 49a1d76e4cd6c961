for service in gfs2 clvmd cman; do service_off "$service"; done
rm -f /etc/cluster/cluster.conf
log "left the cluster"
