if grep -Eq '^[[:space:]]*use_lvmlockd = 1' /etc/lvm/lvm.conf; then
  sed -i -E 's/^([[:space:]]*)use_lvmlockd = 1/\1use_lvmlockd = 0/' /etc/lvm/lvm.conf
  changed "use_lvmlockd set to 0"
else
  log "use_lvmlockd already 0"
fi
