# A node of a cman cluster (RHEL/CentOS 5): /etc/cluster/cluster.conf, then cman.
# A running cluster takes a changed config through ccs_tool with a higher version.
log "start"
conf=/etc/cluster/cluster.conf
version() { sed -n 's/.*config_version="\([0-9]*\)".*/\1/p' "$1" | head -n1; }
new=$(mktemp)
CLEANUP+=("$new")
printf '%s\n' "$CLUSTER_CONF" >"$new"
if [[ -f $conf ]] && diff -q <(sed 's/config_version="[0-9]*"//' "$conf") <(sed 's/config_version="[0-9]*"//' "$new") >/dev/null; then
  log "cluster.conf unchanged"
elif service cman status >/dev/null 2>&1; then
  next=$(($(version "$conf") + 1))
  sed -i "s/config_version=\"[0-9]*\"/config_version=\"$next\"/" "$new"
  install -m 0640 "$new" "$conf"
  ccs_tool update "$conf"
  changed "cluster.conf version $next pushed to the running cluster"
else
  install -D -m 0640 "$new" "$conf"
  changed "cluster.conf written"
fi
service_on cman
log "done: cman running"
