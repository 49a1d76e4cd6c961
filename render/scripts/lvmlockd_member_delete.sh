sed -i -E 's/^([[:space:]]*)use_lvmlockd = 1/\1use_lvmlockd = 0/' /etc/lvm/lvm.conf
log "use_lvmlockd set to 0"
