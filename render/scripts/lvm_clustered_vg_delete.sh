# Destroys the data: runs only when the stack does not protect it (protectData: false).
if vgs "$VG" >/dev/null 2>&1; then
  vgchange -an "$VG" >/dev/null
  vgremove -f "$VG"
  changed "removed volume group $VG"
fi
while read -r dev; do
  if [[ -n $dev && -b $dev ]] && pvs "$dev" >/dev/null 2>&1; then
    pvremove -y "$dev" >/dev/null
    changed "removed physical volume $dev"
  fi
done <<<"$DEVICES"
