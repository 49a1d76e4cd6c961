# Leaves cleanly: pacemaker first (it stops this node's resources: unmount, deactivate,
# lock stop), then corosync. The others load the nodelist without this node once it is
# gone (its fence-device step's delete, on the first member): a reload from here would
# also reload this node's own nodelist, whose vote count the others would keep.
service_off pacemaker
service_off corosync
log "left the cluster"
