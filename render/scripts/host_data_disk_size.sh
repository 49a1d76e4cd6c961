# Hypervisor: the data disk VOLUME of DOMAIN at SIZE_BYTES (SIZE_KEY). Grown in place,
# the domain running or not; libvirt's blockresize tells the running guest at once. Never
# shrunk: LVM and GFS2 cannot give space back under data, so a smaller size stops here,
# before anything is changed.
virsh_() { virsh -q -c "$URI" "$@"; }

# The disk of the domain made from VOLUME (the provider attaches volumes by pool and name),
# its target and pool from the domain's own definition.
target=$(virsh_ domblklist "$DOMAIN" --details | awk -v v="$VOLUME" '$2 == "disk" && $4 == v {print $3}')
[[ -n $target ]] || die "domain $DOMAIN has no disk from volume $VOLUME"
pool=$(virsh_ dumpxml --inactive "$DOMAIN" | awk -v v="$VOLUME" -F"'" '/<source pool=/ && $4 == v {print $2}')
[[ -n $pool ]] || die "cannot find the pool of volume $VOLUME in domain $DOMAIN"
capacity=$(virsh_ vol-info --bytes --pool "$pool" "$VOLUME" | awk '$1 == "Capacity:" {print $2}')
[[ $capacity =~ ^[0-9]+$ ]] || die "cannot read the capacity of $VOLUME in pool $pool"
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
  virsh_ blockresize "$DOMAIN" "$target" "${SIZE_BYTES}B" >/dev/null
else
  virsh_ vol-resize --pool "$pool" "$VOLUME" "$SIZE_BYTES" >/dev/null
fi
changed "grew $VOLUME from $(gib "$capacity") to $(gib "$SIZE_BYTES")"
