# Hypervisor: the tenant's libvirt hook (render/host.py boot_hook_text), so that what a
# reboot of the hypervisor loses (lab guard rules, VLAN bridge, fence_virtd) is back
# before libvirt autostarts the tenant's domains. libvirt finds a new hook file when its
# daemon starts, which is when it is needed.
log "start"
if write_file "$HOOK_PATH" 0755 "$HOOK"; then log "wrote $HOOK_PATH"; else log "$HOOK_PATH unchanged"; fi
