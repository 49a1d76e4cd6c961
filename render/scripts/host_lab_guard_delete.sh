# The rules of host_lab_guard.sh, the block rule first: without the lookup rule it would
# cut the bridge off. has_rule as there.
has_rule() { ip -4 rule show | sed 's/[[:space:]]\+/ /g; s/ $//' | grep -xF -- "$1: $2" >/dev/null; }
if has_rule "$BLOCK_PRIORITY" "from all to $CIDR unreachable"; then
  while has_rule "$BLOCK_PRIORITY" "from all to $CIDR unreachable"; do
    ip rule del priority "$BLOCK_PRIORITY" to "$CIDR" unreachable
  done
  changed "removed rule $BLOCK_PRIORITY: $CIDR unreachable"
fi
lookup="from all to $CIDR lookup main suppress_prefixlength $SUPPRESS_PREFIXLENGTH"
if has_rule "$LOOKUP_PRIORITY" "$lookup"; then
  while has_rule "$LOOKUP_PRIORITY" "$lookup"; do
    ip rule del priority "$LOOKUP_PRIORITY" to "$CIDR" lookup main suppress_prefixlength "$SUPPRESS_PREFIXLENGTH"
  done
  changed "removed rule $LOOKUP_PRIORITY: $CIDR lookup"
fi
log "done"
