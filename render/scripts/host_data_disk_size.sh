# Hypervisor: the data disk VOLUME of DOMAIN at SIZE_BYTES (SIZE_KEY). Grown in place,
# the domain running or not; libvirt's blockresize tells the running guest at once. Never
# shrunk: LVM and GFS2 cannot give space back under data, so a smaller size stops here,
# before anything is changed.
virsh_() { virsh -q -c "$URI" "$@"; }

# The disk's path, from the domain's own disk list: the volume's file is named after it.
path=$(virsh_ domblklist "$DOMAIN" --details | awk -v v="/$VOLUME" '$2 == "disk" && substr($4, length($4) - length(v) + 1) == v {print $4}')
[[ -n $path ]] || die "domain $DOMAIN has no disk from volume $VOLUME"
capacity=$(virsh_ vol-info --bytes "$path" | awk '$1 == "Capacity:" {print $2}')
[[ $capacity =~ ^[0-9]+$ ]] || die "cannot read the capacity of $path"
gib() { awk -v b="$1" 'BEGIN {printf "%.2f GiB", b / 1073741824}'; }

if ((capacity == SIZE_BYTES)); then
  log "$VOLUME is $(gib "$capacity")"
  exit 0
fi
if ((capacity > SIZE_BYTES)); then
  die "$SIZE_KEY: $VOLUME is $(gib "$capacity"), the stack asks $(gib "$SIZE_BYTES"): a shared disk is never shrunk (LVM and GFS2 cannot give space back under data); set $SIZE_KEY back to at least $((capacity / 1073741824))"
fi
[[ -z $REFUSAL ]] || die "$SIZE_KEY: $VOLUME stays $(gib "$capacity"): $REFUSAL"
if [[ $(virsh_ domstate "$DOMAIN") == running ]]; then
  virsh_ blockresize "$DOMAIN" "$path" "${SIZE_BYTES}B" >/dev/null
else
  virsh_ vol-resize "$path" "$SIZE_BYTES" >/dev/null
fi
changed "grew $VOLUME from $(gib "$capacity") to $(gib "$SIZE_BYTES")"
