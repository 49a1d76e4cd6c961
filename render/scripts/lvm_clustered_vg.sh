# Once: the clustered VG (vgcreate -cy) over the imported exports; clvmd makes its LVs
# active on every node.
log "start"
mapfile -t devices <<<"$DEVICES"
for dev in "${devices[@]}"; do wait_until 120 "device $dev" test -b "$dev"; done
if vgs "$VG" >/dev/null 2>&1; then
  log "volume group $VG exists"
else
  vgcreate -cy "$VG" "${devices[@]}"
  changed "created clustered volume group $VG"
fi
while read -r lv size; do
  [[ -n $lv ]] || continue
  if lvs "$VG/$lv" >/dev/null 2>&1; then continue; fi
  if [[ $size == *%FREE ]]; then lvcreate -l "$size" -n "$lv" "$VG"; else lvcreate -L "$size" -n "$lv" "$VG"; fi
  changed "created $VG/$lv ($size)"
done <<<"$LVS"
vgchange -ay "$VG" >/dev/null
log "done: $VG active"
