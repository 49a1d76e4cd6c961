vlan_if="$TRUNK.$VLAN_ID"
while iptables -C FORWARD -j "$CHAIN" 2>/dev/null; do iptables -D FORWARD -j "$CHAIN"; done
if iptables -n -L "$CHAIN" >/dev/null 2>&1; then
  iptables -F "$CHAIN"
  iptables -X "$CHAIN"
fi
for link in "$BRIDGE" "$vlan_if"; do
  if ip link show "$link" >/dev/null 2>&1; then
    ip link del "$link"
    log "removed $link"
  fi
done
log "done"
