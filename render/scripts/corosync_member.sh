# A member of a corosync 3 + pacemaker cluster: config and authkey, then the stack.
# The authkey arrives base64 on stdin. A changed nodelist is reloaded, not restarted.
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

if systemctl is-active --quiet corosync; then
  if ((key_changed)); then
    systemctl restart corosync pacemaker
    changed "authkey changed: restarted the cluster stack on this node"
  elif ((conf_changed)); then
    corosync-cfgtool -R >/dev/null
    changed "corosync.conf changed: reloaded"
  fi
fi
service_on corosync
service_on pacemaker
wait_until 120 "corosync to join the cluster" corosync-cfgtool -s
log "done: corosync and pacemaker running"
