# One member (RHEL/CentOS 5): GFS2 in /etc/fstab, mounted now and by the gfs2 service at boot.
line="$DEVICE $MOUNT_POINT gfs2 $OPTIONS 0 0"
if grep -qxF "$line" /etc/fstab; then
  log "fstab entry present"
else
  write_file /etc/fstab 0644 "$(fstab_without "$MOUNT_POINT")"$'\n'"$line" || true
  log "fstab entry written"
fi
mkdir -p "$MOUNT_POINT"
wait_until 120 "$DEVICE" test -b "$DEVICE"
if mountpoint -q "$MOUNT_POINT"; then
  log "$MOUNT_POINT already mounted"
else
  mount "$MOUNT_POINT"
  changed "mounted $MOUNT_POINT"
fi
service_on gfs2
