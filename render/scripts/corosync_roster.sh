# This member's corosync.conf and authkey, written before any member joins; a running
# corosync loads a changed nodelist with a cluster-wide reload (corosync-cfgtool -R).
# The authkey arrives base64 on stdin. A nodelist that leaves out a node still in the
# membership is written but not loaded yet: that node leaves first (pacemaker, then
# corosync stopped), and its fence-device step's delete reloads the nodelist after it, so
# the node leaves cleanly instead of being lost and fenced.
log "start"
install -d -m 0755 /etc/corosync
key_tmp=$(mktemp /etc/corosync/authkey.XXXXXX)
CLEANUP+=("$key_tmp")
base64 -d >"$key_tmp" || die "the corosync authkey on stdin is not base64"
[[ -s $key_tmp ]] || die "empty corosync authkey on stdin"
key_changed=0
if ! cmp -s "$key_tmp" /etc/corosync/authkey; then
  chmod 0400 "$key_tmp"
  mv -f "$key_tmp" /etc/corosync/authkey
  note_change "wrote /etc/corosync/authkey"
  key_changed=1
fi
conf_changed=0
write_file /etc/corosync/corosync.conf 0644 "$COROSYNC_CONF" && conf_changed=1

# Node ids in the running membership that the new nodelist does not have.
leaving() {
  corosync-cmapctl -b runtime.members 2>/dev/null \
    | sed -nE 's/^runtime\.members\.([0-9]+)\.status \(str\) = joined$/\1/p' \
    | grep -vxF -f <(printf '%s\n' "$NODEIDS") || true
}

if systemctl is-active --quiet corosync; then
  if ((key_changed)); then
    systemctl restart corosync pacemaker
    changed "authkey changed: restarted the cluster stack on this node"
  elif ((conf_changed)); then
    gone=$(leaving)
    if [[ -n $gone ]]; then
      changed "corosync.conf written; its reload waits for node id(s) ${gone//$'\n'/ } to leave"
    else
      corosync-cfgtool -R >/dev/null
      changed "corosync.conf changed: reloaded"
    fi
    # votequorum cannot turn two_node on in a running cluster (it can turn it off).
    if [[ $TWO_NODE == 1 ]] && ! corosync-quorumtool -s 2>/dev/null | grep -q '^Flags:.*2Node'; then
      log "warning: two-node quorum takes effect only once corosync restarts on both members; until then losing one member stops the cluster"
    fi
  fi
fi
log "done"
