pidfile="$DIR/fence_virtd.pid"
if [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  pid=$(cat "$pidfile")
  # Only the daemon this stack started: its command line names this tenant's config.
  if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$DIR/fence_virt.conf"; then
    kill "$pid"
        wait_until 30 "fence_virtd $pid to stop" pid_gone "$pid"
    changed "stopped fence_virtd $pid"
  fi
fi
confine=(INPUT -p udp --dport "$PORT" ! -i "$BRIDGE" -j DROP)
while iptables -C "${confine[@]}" 2>/dev/null; do
  iptables -D "${confine[@]}"
  note_change "removed the INPUT rule for UDP port $PORT"
done
if [[ -e $DIR ]]; then rm -rf "$DIR" && note_change "removed $DIR"; fi
log "done"
