if mountpoint -q "$MOUNT_POINT"; then
  umount "$MOUNT_POINT"
  changed "unmounted $MOUNT_POINT"
fi
write_file /etc/fstab 0644 "$(fstab_without "$MOUNT_POINT")" && log "fstab entry removed"
log "done"
