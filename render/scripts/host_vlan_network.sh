# Hypervisor: this tenant's bridge on TRUNK.VLAN, and no routing through the host, so a
# tenant reaches nothing but its own segment.
log "start"
vlan_if="$TRUNK.$VLAN_ID"
ip link show "$TRUNK" >/dev/null 2>&1 || die "trunk interface $TRUNK does not exist"
if ! ip link show "$vlan_if" >/dev/null 2>&1; then
  ip link add link "$TRUNK" name "$vlan_if" type vlan id "$VLAN_ID"
  log "created $vlan_if"
fi
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
  ip link add name "$BRIDGE" type bridge
  log "created bridge $BRIDGE"
fi
[[ $(basename "$(readlink -f "/sys/class/net/$vlan_if/master" 2>/dev/null)") == "$BRIDGE" ]] ||
  ip link set "$vlan_if" master "$BRIDGE"
ip -4 addr show dev "$BRIDGE" | grep -qw "inet $HOST_CIDR" || ip addr add "$HOST_CIDR" dev "$BRIDGE"
ip link set "$vlan_if" up
ip link set "$BRIDGE" up

if ! iptables -n -L "$CHAIN" >/dev/null 2>&1; then
  iptables -N "$CHAIN"
fi
iptables -F "$CHAIN"
iptables -A "$CHAIN" -i "$BRIDGE" -j DROP
iptables -A "$CHAIN" -o "$BRIDGE" -j DROP
iptables -C FORWARD -j "$CHAIN" 2>/dev/null || iptables -I FORWARD -j "$CHAIN"
log "done: $BRIDGE on $vlan_if with $HOST_CIDR"
