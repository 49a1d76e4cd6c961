vlan_if="$TRUNK.$VLAN_ID"
while iptables -C FORWARD -j "$CHAIN" 2>/dev/null; do iptables -D FORWARD -j "$CHAIN"; done
while iptables -C INPUT -j "$CHAIN-in" 2>/dev/null; do iptables -D INPUT -j "$CHAIN-in"; done
for chain in "$CHAIN" "$CHAIN-in"; do
  if iptables -n -L "$chain" >/dev/null 2>&1; then
    iptables -F "$chain"
    iptables -X "$chain"
    changed "removed iptables chain $chain"
  fi
done
for link in "$BRIDGE" "$vlan_if"; do
  if ip link show "$link" >/dev/null 2>&1; then
    ip link del "$link"
    changed "removed $link"
  fi
done
log "done"
