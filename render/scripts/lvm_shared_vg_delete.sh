# Destroys the data: runs only when the stack does not protect it (protectData: false).
python3 -c "$CIB_TOOL" remove "$STAGE"
if vgs "$VG" >/dev/null 2>&1; then
  vgchange --lockstart "$VG" >/dev/null || true
  vgremove --yes --force "$VG"
  log "removed volume group $VG"
fi
while read -r dev; do
  if [[ -n $dev && -b $dev ]] && pvs "$dev" >/dev/null 2>&1; then pvremove --yes "$dev" >/dev/null; fi
done <<<"$DEVICES"
log "done"
