if [[ -e $HOOK_PATH ]]; then rm -f "$HOOK_PATH" && changed "removed $HOOK_PATH"; fi
log "hook removed"
