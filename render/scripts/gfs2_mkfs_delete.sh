# The file system lives as long as its logical volume; removing the VG removes it.
log "nothing to undo: GFS2 stays on $DEVICE until its volume group is removed"
