# Read-only: the cluster as one member sees it, for the stack outputs.
if command -v crm_mon >/dev/null; then
  crm_mon -1 --include=none,nodes,resources 2>/dev/null || crm_mon -1
else
  cman_tool status | grep -E '^(Cluster Name|Nodes|Quorum)'
  cman_tool nodes
fi
