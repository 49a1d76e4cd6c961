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
# A member's own stage goes after the member has left the cluster: pacemaker forgets its
# node entry and status too (as `pcs cluster node remove` does), unless it is this node.
if [[ -n ${FORGET_NODE:-} ]] && crm_mon -1 >/dev/null 2>&1 && [[ $FORGET_NODE != "$(crm_node -n)" ]]; then
  if cibadmin --query --scope nodes 2>/dev/null | grep -qF "uname=\"$FORGET_NODE\""; then
    crm_node --force --remove "$FORGET_NODE" >/dev/null
    changed "pacemaker forgot node $FORGET_NODE"
  fi
fi
