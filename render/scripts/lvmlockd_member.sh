# lvm.conf for shared VGs: use_lvmlockd = 1. lvmlockd and dlm themselves run under
# pacemaker (the locking clone), as the RHEL 9 GFS2 procedure has it.
current=$(lvmconfig --typeconfig full global/use_lvmlockd 2>/dev/null | cut -d= -f2)
if [[ $current == 1 ]]; then
  log "use_lvmlockd already 1"
else
  sed -i -E 's/^([[:space:]]*)#?[[:space:]]*use_lvmlockd = [01]/\1use_lvmlockd = 1/' /etc/lvm/lvm.conf
  [[ $(lvmconfig --typeconfig full global/use_lvmlockd | cut -d= -f2) == 1 ]] || die "could not set use_lvmlockd in /etc/lvm/lvm.conf"
  changed "use_lvmlockd set to 1"
fi
# RHEL 9 lists usable devices in a devices file: the imported exports must be in it.
if [[ $(lvmconfig --typeconfig full devices/use_devicesfile 2>/dev/null | cut -d= -f2) == 1 ]]; then
  while read -r dev; do
    [[ -n $dev ]] || continue
    if ! lvmdevices 2>/dev/null | grep -qF "$(readlink -f "$dev")"; then
      lvmdevices --adddev "$dev"
      changed "$dev added to the LVM devices file"
    fi
  done <<<"$DEVICES"
fi
