# Once: the shared VG over the imported exports and its LVs (lvmlockd), then pacemaker's
# LVM-activate clone activates them shared on every member.
log "start"
while read -r dev; do
  [[ -n $dev ]] && wait_until 120 "device $dev" test -b "$dev"
done <<<"$DEVICES"
mapfile -t devices <<<"$DEVICES"
if vgs "$VG" >/dev/null 2>&1; then
  log "volume group $VG exists"
else
  vgcreate --shared "$VG" "${devices[@]}"
  changed "created shared volume group $VG"
fi
vgchange --lockstart "$VG" >/dev/null
while read -r lv size; do
  [[ -n $lv ]] || continue
  if lvs "$VG/$lv" >/dev/null 2>&1; then
    log "logical volume $VG/$lv exists"
    continue
  fi
  if [[ $size == *%FREE ]]; then
    lvcreate --yes --activate sy -l "$size" -n "$lv" "$VG"
  else
    lvcreate --yes --activate sy -L "$size" -n "$lv" "$VG"
  fi
  changed "created $VG/$lv ($size)"
done <<<"$LVS"
applied=$(python3 -c "$CIB_TOOL" apply "$STAGE")
if [[ $applied == "pacemaker configuration unchanged" ]]; then
  log "$applied"
else
  while read -r line; do changed "$line"; done <<<"$applied"
fi
python3 -c "$CIB_TOOL" wait-running "$CLONE" "$MEMBERS" "$TIMEOUT"
log "done: $VG active on $MEMBERS members"
