# The guest answered SSH; wait for its boot to finish before configuring it.
if command -v systemctl >/dev/null; then
  state=$(systemctl is-system-running --wait 2>/dev/null || true)
  log "booted ($state)"
else
  log "booted"
fi
