# This member's imports at their exports' sizes (DEVICES: DEVICE BYTES HOW ARG KEY); then,
# on the FIRST member, the PVs and LVs grown over them, on the others the LVs' device-
# mapper tables reloaded to what the first member made. Members run this one after the
# other, the first member first. An iSCSI session rescans online. An NBD connection
# keeps the size of its handshake, so the member leaves pacemaker's resources (standby:
# GFS2 unmounted here, mounted on the others) while its import reconnects, and comes back.
log "start"
size_of() { blockdev --getsize64 "$1"; }
size_is() { [[ $(size_of "$1") == "$2" ]]; }
holders() { ls -A "/sys/block/$(basename "$(readlink -f "$1")")/holders" 2>/dev/null; }
node=$(crm_node -n)
# Set when this step put the member in standby; a run that stopped midway leaves it, and
# the next run brings the member back.
standby_mark=/run/gfs2-cluster/storage-standby

reconnect=()
while read -r dev want how arg key; do
  [[ -n $dev ]] || continue
  wait_until 120 "device $dev" test -b "$dev"
  have=$(size_of "$dev")
  if ((have > want)); then
    die "$key: $dev holds $have bytes, more than the $want asked: a shared device is never shrunk; set $key back"
  fi
  ((have < want)) || continue
  case $how in
    rescan)
      iscsiadm -m node -T "$arg" --rescan >/dev/null
      wait_until 120 "$dev to show $want bytes after the rescan" size_is "$dev" "$want"
      changed "$dev rescanned: $have -> $want bytes"
      ;;
    reconnect) reconnect+=("$dev $want $arg") ;;
    *) die "unknown way to resize $dev: $how" ;;
  esac
done <<<"$DEVICES"

if ((${#reconnect[@]})); then
  mkdir -p "${standby_mark%/*}"
  : >"$standby_mark"
  crm_attribute --node "$node" --name standby --update on --lifetime reboot
  log "$node in standby while its imports reconnect"
  python3 -c "$CIB_TOOL" wait-stopped-on "$node" "$TIMEOUT"
  for r in "${reconnect[@]}"; do
    read -r dev want unit <<<"$r"
    [[ -z $(holders "$dev") ]] || die "$dev is still in use ($(holders "$dev" | tr '\n' ' ')) with $node in standby"
    systemctl restart "$unit"
    wait_until 120 "$dev to show $want bytes after the reconnect" size_is "$dev" "$want"
    changed "$dev reconnected: $want bytes"
  done
fi
if [[ -e $standby_mark ]]; then
  crm_attribute --node "$node" --name standby --delete --lifetime reboot >/dev/null
  mapfile -t clones <<<"$CLONES"
  python3 -c "$CIB_TOOL" wait-started-on "$node" "$TIMEOUT" "${clones[@]}"
  rm -f "$standby_mark"
  changed "$node back from standby, ${clones[*]} started here"
fi

# size_bytes SIZE EXTENT: an lvcreate -L size (M, G, T: binary) in bytes, rounded up to
# whole extents as LVM does.
size_bytes() {
  local n=${1%?} unit=${1: -1} mult
  case $unit in
    M) mult=$((1 << 20)) ;;
    G) mult=$((1 << 30)) ;;
    T) mult=$((1 << 40)) ;;
    *) die "size $1 has no M, G or T" ;;
  esac
  echo $(((n * mult + $2 - 1) / $2 * $2))
}
lv_field() { lvs --noheadings --nosuffix --units b -o "$1" "$2" | tr -d ' '; }

if ((FIRST)); then
  while read -r dev; do
    [[ -n $dev ]] || continue
    read -r pe_count pe_start extent dev_size < <(pvs --noheadings --nosuffix --units b \
      -o pv_pe_count,pe_start,vg_extent_size,dev_size "$dev")
    if ((pe_count < (dev_size - pe_start) / extent)); then
      pvresize "$dev" >/dev/null
      changed "pvresize $dev: $pe_count -> $(( (dev_size - pe_start) / extent )) extents"
    fi
  done <<<"$PVS"
  while read -r vg lv size key; do
    [[ -n $lv ]] || continue
    read -r have extent < <(lvs --noheadings --nosuffix --units b -o lv_size,vg_extent_size "$vg/$lv")
    if [[ $size == 100%FREE ]]; then
      free=$(vgs --noheadings -o vg_free_count "$vg" | tr -d ' ')
      ((free > 0)) || continue
      lvextend --lockopt skiplv -l +100%FREE "$vg/$lv" >/dev/null
    elif [[ $size == *%FREE ]]; then
      continue  # a share of what was left when it was made
    else
      want=$(size_bytes "$size" "$extent")
      if ((have > want)); then
        die "$key: $vg/$lv holds $have bytes, more than $size: a logical volume under GFS2 is never shrunk; set $key back"
      fi
      ((have < want)) || continue
      lvextend --lockopt skiplv -L "$size" "$vg/$lv" >/dev/null
    fi
    changed "lvextend $vg/$lv: $have -> $(lv_field lv_size "$vg/$lv") bytes"
  done <<<"$LVS"
else
  while read -r vg lv _; do
    [[ -n $lv ]] || continue
    [[ -b /dev/$vg/$lv ]] || continue  # not active here (yet): activation reads the new size
    have=$(size_of "/dev/$vg/$lv")
    want=$(lv_field lv_size "$vg/$lv")
    ((have < want)) || continue
    lvchange --refresh "$vg/$lv" >/dev/null
    changed "$vg/$lv reloaded: $have -> $want bytes"
  done <<<"$LVS"
fi
log "done"
