# Hypervisor: the Xen credit scheduler's cap for one guest. libvirt's domain XML has no
# element for it (only the weight, from cputune shares), so it is set through schedinfo.
current=$(virsh -c "$URI" schedinfo "$DOMAIN" | awk '$1 == "cap" {print $3}')
if [[ $current == "$CAP" ]]; then
  log "$DOMAIN cap already $CAP%"
else
  virsh -c "$URI" schedinfo "$DOMAIN" --set "cap=$CAP" --live --config >/dev/null
  changed "$DOMAIN cap set to $CAP% (was ${current:-unset})"
fi
