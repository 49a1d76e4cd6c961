# GFS2 needs a journal per member that mounts it. A file system made before members were
# added gets the missing ones online (gfs2_jadd, on a member that mounts it), each the
# size of its first (32 MB at least). One not made yet gets them all from mkfs, later in this run.
log "start"
journals() { gfs2_edit -p jindex "$DEVICE" 2>/dev/null | grep -cE 'File +journal[0-9]+$' || true; }
if [[ ! -b $DEVICE ]] || [[ $(blkid -o value -s TYPE "$DEVICE" 2>/dev/null || true) != gfs2 ]]; then
  log "no GFS2 on $DEVICE yet: mkfs makes its $JOURNALS journals"
  exit 0
fi
have=$(journals)
((have > 0)) || die "cannot read the journal index of $DEVICE"
if ((have >= JOURNALS)); then
  log "$DEVICE has $have journals (needs $JOURNALS)"
  exit 0
fi
wait_until "$TIMEOUT" "$MOUNT_POINT to be mounted here (gfs2_jadd works on a mounted file system)" \
  findmnt -n -t gfs2 --mountpoint "$MOUNT_POINT"
size_mb=$(gfs2_edit -p journals "$DEVICE" 2>/dev/null | sed -nE 's/^journal0: +[0-9a-fx]+ +([0-9]+)MB.*/\1/p')
[[ $size_mb =~ ^[0-9]+$ ]] || die "cannot read the size of journal0 on $DEVICE"
# mkfs.gfs2 makes journals smaller than 32 MB on a small file system; gfs2_jadd refuses them.
((size_mb >= 32)) || size_mb=32
gfs2_jadd -j "$((JOURNALS - have))" -J "$size_mb" "$MOUNT_POINT" >/dev/null
changed "added $((JOURNALS - have)) journals of $size_mb MB to $DEVICE (now $(journals))"
