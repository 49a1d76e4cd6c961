# Once: every node of cluster.conf is a cman member before clustered LVM starts.
all_members() { [[ $(cman_tool nodes | awk '$2 == "M"' | wc -l) -ge $NODES ]]; }
wait_until "$TIMEOUT" "$NODES cman members" all_members
log "all $NODES nodes are cluster members"
