# Once: GFS2 on the LV, only when it holds no file system yet (never over user data).
log "start"
wait_until "$TIMEOUT" "$DEVICE to be active here" test -b "$DEVICE"
type=$(blkid -o value -s TYPE "$DEVICE" 2>/dev/null || true)
if [[ $type == gfs2 ]]; then
  log "$DEVICE already holds GFS2"
elif [[ -n $type ]]; then
  die "$DEVICE holds a $type file system; refusing to overwrite it"
else
  mkfs.gfs2 -O -p lock_dlm -t "$LOCK_TABLE" -j "$JOURNALS" "$DEVICE" >/dev/null
  changed "made GFS2 $LOCK_TABLE with $JOURNALS journals on $DEVICE"
fi
