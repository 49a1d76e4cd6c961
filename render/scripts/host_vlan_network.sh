# Hypervisor: this tenant's bridge on TRUNK.VLAN, and no routing through the host, so a
# tenant reaches nothing but its own segment.
log "start"
vlan_if="$TRUNK.$VLAN_ID"
ip link show "$TRUNK" >/dev/null 2>&1 || die "trunk interface $TRUNK does not exist"
# One CIDR on two segments of this host would share its routes: the host's own traffic to
# a guest (fence_virtd connecting back to a member) would reach whichever came first.
overlap=$({
  ip -4 -o route show root "$HOST_CIDR" scope link
  ip -4 -o route show match "$HOST_CIDR" scope link
} | awk -v br="$BRIDGE" '{ for (i = 1; i < NF; i++) if ($i == "dev" && $(i + 1) != br) print $1 " on " $(i + 1) }' | sort -u)
[[ -z $overlap ]] || die "$HOST_CIDR overlaps ${overlap//$'\n'/, } on this host: give this tenant its own network.cidr"
if ! ip link show "$vlan_if" >/dev/null 2>&1; then
  ip link add link "$TRUNK" name "$vlan_if" type vlan id "$VLAN_ID"
  changed "created $vlan_if"
fi
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
  ip link add name "$BRIDGE" type bridge
  changed "created bridge $BRIDGE"
fi
if [[ $(basename "$(readlink -f "/sys/class/net/$vlan_if/master" 2>/dev/null)") != "$BRIDGE" ]]; then
  ip link set "$vlan_if" master "$BRIDGE"
  changed "$vlan_if joined $BRIDGE"
fi
if ! ip -4 addr show dev "$BRIDGE" | grep -qw "inet $HOST_CIDR"; then
  ip addr add "$HOST_CIDR" dev "$BRIDGE"
  changed "$HOST_CIDR on $BRIDGE"
fi
for link in "$vlan_if" "$BRIDGE"; do
  if ! ip link show "$link" | grep -q '[<,]UP[,>]'; then
    ip link set "$link" up
    changed "$link up"
  fi
done

# The chains are rewritten only when their rules differ, so a second run changes nothing.
# Frames between two ports of the bridge pass FORWARD too where br_netfilter is loaded
# (bridge-nf-call-iptables=1, e.g. beside Docker): accepted first, or the tenant's own
# guests could not reach each other. Anything routed into or out of the segment drops.
wanted=$(printf '%s\n' "-N $CHAIN" "-A $CHAIN -i $BRIDGE -o $BRIDGE -j ACCEPT" "-A $CHAIN -i $BRIDGE -j DROP" \
  "-A $CHAIN -o $BRIDGE -j DROP")
if [[ $(iptables -S "$CHAIN" 2>/dev/null) != "$wanted" ]]; then
  iptables -n -L "$CHAIN" >/dev/null 2>&1 || iptables -N "$CHAIN"
  iptables -F "$CHAIN"
  iptables -A "$CHAIN" -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
  iptables -A "$CHAIN" -i "$BRIDGE" -j DROP
  iptables -A "$CHAIN" -o "$BRIDGE" -j DROP
  changed "iptables chain $CHAIN drops routing through $BRIDGE"
fi
if ! iptables -C FORWARD -j "$CHAIN" 2>/dev/null; then
  iptables -I FORWARD -j "$CHAIN"
  changed "FORWARD jumps to $CHAIN"
fi

# The host answers on any of its addresses through any interface (weak host model): from
# this bridge only on the tenant's own host address, so no tenant reaches what the host
# offers another tenant on that tenant's address, nor finds the address by ARP.
in_chain="$CHAIN-in"
wanted=$(printf '%s\n' "-N $in_chain" "-A $in_chain ! -d ${HOST_CIDR%/*}/32 -i $BRIDGE -m addrtype --dst-type LOCAL -j DROP")
if [[ $(iptables -S "$in_chain" 2>/dev/null) != "$wanted" ]]; then
  iptables -n -L "$in_chain" >/dev/null 2>&1 || iptables -N "$in_chain"
  iptables -F "$in_chain"
  iptables -A "$in_chain" -i "$BRIDGE" ! -d "${HOST_CIDR%/*}" -m addrtype --dst-type LOCAL -j DROP
  changed "iptables chain $in_chain: $BRIDGE reaches the host on ${HOST_CIDR%/*} only"
fi
if ! iptables -C INPUT -j "$in_chain" 2>/dev/null; then
  iptables -I INPUT -j "$in_chain"
  changed "INPUT jumps to $in_chain"
fi
arp_ignore="/proc/sys/net/ipv4/conf/$BRIDGE/arp_ignore"
if [[ $(cat "$arp_ignore") != 1 ]]; then
  echo 1 >"$arp_ignore"
  changed "$BRIDGE answers ARP for its own addresses only"
fi
# The chains above are IPv4: with no IPv6 on the tenant's bridge the host can neither
# route nor answer IPv6 between tenants, whatever its forwarding settings.
disable_ipv6="/proc/sys/net/ipv6/conf/$BRIDGE/disable_ipv6"
if [[ -e $disable_ipv6 && $(cat "$disable_ipv6") != 1 ]]; then
  echo 1 >"$disable_ipv6"
  changed "no IPv6 on $BRIDGE"
fi
log "done: $BRIDGE on $vlan_if with $HOST_CIDR"
