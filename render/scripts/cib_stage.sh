# Once for the cluster, on one member: wait for every member, apply this stage of the
# pacemaker configuration, then wait until its resources run where they should.
log "start"
wait_until "$TIMEOUT" "pacemaker on this node" crm_mon -1
python3 -c "$CIB_TOOL" wait-members "$MEMBERS" "$TIMEOUT"
applied=$(python3 -c "$CIB_TOOL" apply "$STAGE")
if [[ $applied == "pacemaker configuration unchanged" ]]; then
  log "$applied"
else
  while read -r line; do changed "$line"; done <<<"$applied"
fi
while read -r resource count; do
  [[ -n $resource ]] || continue
  python3 -c "$CIB_TOOL" wait-running "$resource" "$count" "$TIMEOUT"
  log "$resource running on $count nodes"
done <<<"$WAIT_FOR"
log "done"
