# Destroys the data: runs only when the stack does not protect it (protectData: false).
removed=$(python3 -c "$CIB_TOOL" remove "$STAGE")
if [[ -n $removed ]]; then
  while read -r line; do changed "$line"; done <<<"$removed"
fi
if vgs "$VG" >/dev/null 2>&1; then
  vgchange --lockstart "$VG" >/dev/null || true
  vgremove --yes --force "$VG"
  changed "removed volume group $VG"
fi
while read -r dev; do
  if [[ -n $dev && -b $dev ]] && pvs "$dev" >/dev/null 2>&1; then
    pvremove --yes "$dev" >/dev/null
    changed "removed physical volume $dev"
  fi
done <<<"$DEVICES"
log "done"
