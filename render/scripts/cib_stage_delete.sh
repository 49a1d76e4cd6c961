if crm_mon -1 >/dev/null 2>&1; then
  removed=$(python3 -c "$CIB_TOOL" remove "$STAGE")
  if [[ -n $removed ]]; then
    while read -r line; do changed "$line"; done <<<"$removed"
  else
    log "stage already removed"
  fi
else
  log "pacemaker is not running here: nothing to remove"
fi
# A member's own stage goes after the member has left the cluster. The others then load
# the nodelist without it (their roster wrote it), quorum counts the members that stay,
# and pacemaker forgets the node (as `pcs cluster node remove` does). Not this node.
if [[ -n ${FORGET_NODE:-} ]] && crm_mon -1 >/dev/null 2>&1 && [[ $FORGET_NODE != "$(crm_node -n)" ]]; then
  # Only for a node taken out of the stack: in a destroy it stays in the nodelist.
  if ! grep -qE "^[[:space:]]*name: $FORGET_NODE\$" /etc/corosync/corosync.conf; then
    if corosync-cmapctl -b nodelist.node 2>/dev/null | grep -q "name (str) = $FORGET_NODE\$"; then
      corosync-cfgtool -R >/dev/null
      changed "corosync reloaded a nodelist without $FORGET_NODE"
    fi
    listed=$(grep -cE '^[[:space:]]*nodeid:' /etc/corosync/corosync.conf)
    expected=$( (corosync-quorumtool -s || true) | sed -nE 's/^Expected votes: +([0-9]+).*/\1/p')
    if [[ $expected =~ ^[0-9]+$ ]] && ((expected > listed)); then
      corosync-quorumtool -e "$listed" >/dev/null
      changed "expected votes $expected -> $listed"
    fi
  fi
  if cibadmin --query --scope nodes 2>/dev/null | grep -qF "uname=\"$FORGET_NODE\""; then
    crm_node --force --remove "$FORGET_NODE" >/dev/null
    changed "pacemaker forgot node $FORGET_NODE"
  fi
fi
