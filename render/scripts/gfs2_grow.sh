# GFS2 on DEVICE, mounted on MOUNT_POINT, over its whole logical volume: gfs2_grow adds
# resource groups online (the other members read them from the rindex). Its test mode
# says whether there is room for one; SIZES only make this step run again when they change.
log "start"
if [[ ! -b $DEVICE ]] || [[ $(blkid -o value -s TYPE "$DEVICE" 2>/dev/null || true) != gfs2 ]]; then
  die "no GFS2 on $DEVICE"
fi
wait_until "$TIMEOUT" "$MOUNT_POINT to be mounted here (gfs2_grow works on a mounted file system)" \
  findmnt -n -t gfs2 --mountpoint "$MOUNT_POINT"
test_run=$(gfs2_grow -T "$MOUNT_POINT" 2>&1) || true
mb=$(sed -nE 's/^The file system will grow by ([0-9]+)MB\.$/\1/p' <<<"$test_run")
if [[ -z $mb ]] || ((mb == 0)); then
  log "$MOUNT_POINT fills $DEVICE: $(tr '\n' ' ' <<<"$test_run")"
  exit 0
fi
before=$(df -B1 --output=size "$MOUNT_POINT" | tail -1 | tr -d ' ')
gfs2_grow "$MOUNT_POINT" >/dev/null
changed "gfs2_grow $MOUNT_POINT: $before -> $(df -B1 --output=size "$MOUNT_POINT" | tail -1 | tr -d ' ') bytes (+${mb} MB)"
