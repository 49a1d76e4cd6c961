# Hypervisor: this tenant's own fence_virtd, with its own key, listening on its own bridge.
log "start"
install -d -m 0700 "$DIR"
key_tmp=$(mktemp "$DIR/key.XXXXXX")
CLEANUP+=("$key_tmp")
base64 -d >"$key_tmp" || die "the fence key on stdin is not base64"
[[ -s $key_tmp ]] || die "empty fence key on stdin"
changed=0
if ! cmp -s "$key_tmp" "$DIR/fence_xvm.key"; then
  mv -f "$key_tmp" "$DIR/fence_xvm.key"
  note_change "wrote $DIR/fence_xvm.key"
  changed=1
fi
write_file "$DIR/fence_virt.conf" 0600 "$CONF" && changed=1

# fence_virtd binds 0.0.0.0:PORT, and its socket also receives datagrams for groups joined
# on other bridges (IP_MULTICAST_ALL): only this tenant's bridge may reach the port.
confine=(INPUT -p udp --dport "$PORT" ! -i "$BRIDGE" -j DROP)
if ! iptables -C "${confine[@]}" 2>/dev/null; then
  iptables -I "${confine[@]}"
  changed "UDP port $PORT reachable from $BRIDGE only"
fi

pidfile="$DIR/fence_virtd.pid"
running() { [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
if running && ((changed)); then
  old=$(cat "$pidfile")
  kill "$old"
  wait_until 30 "the old fence_virtd to stop" pid_gone "$old"
  changed "configuration changed: stopped fence_virtd $old"
fi
if running; then
  log "fence_virtd already running (pid $(cat "$pidfile"))"
else
  ip link show "$BRIDGE" >/dev/null 2>&1 || die "bridge $BRIDGE does not exist"
  fence_virtd -w -f "$DIR/fence_virt.conf" -p "$pidfile" </dev/null >/dev/null 2>&1
  wait_until 10 "fence_virtd to write $pidfile" running
  changed "fence_virtd started (pid $(cat "$pidfile")) on $BRIDGE port $PORT"
fi
