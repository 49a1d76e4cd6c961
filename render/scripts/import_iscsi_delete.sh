# Logs out of TARGET_IQN at PORTAL and deletes its node record and the boot-time wait unit.
# The member keeps its initiator name: it is the member's, not this export's.

has_record() { iscsiadm -m node -T "$TARGET_IQN" -p "$PORTAL" >/dev/null 2>&1; }
logged_in() {
  iscsiadm -m session 2>/dev/null |
    awk -v p="$PORTAL," -v t="$TARGET_IQN" 'index($3, p) == 1 && $4 == t { found = 1 } END { exit !found }'
}
holders() {
  [[ -e $DEVICE ]] || return 0
  ls -A "/sys/class/block/$(basename "$(readlink -f "$DEVICE")")/holders" 2>/dev/null
}

if ! has_record && ! logged_in && [[ ! -e $UNIT_FILE ]]; then
  log "iscsi import $EXPORT_NAME already gone"
  exit 0
fi
[[ -z $(holders) ]] || die "$DEVICE is in use ($(holders | tr '\n' ' ')): stop the cluster on this member first"

changed "logging out of $TARGET_IQN at $PORTAL"
service_off "$UNIT_NAME"
rm -f "$UNIT_FILE"
systemctl daemon-reload
if logged_in; then iscsiadm -m node -T "$TARGET_IQN" -p "$PORTAL" --logout >/dev/null; fi
if has_record; then iscsiadm -m node -T "$TARGET_IQN" -p "$PORTAL" -o delete; fi
# The discovery record goes with the portal's last target (deleting it deletes its nodes).
if ! iscsiadm -m node -p "$PORTAL" >/dev/null 2>&1; then
  iscsiadm -m discoverydb -t sendtargets -p "$PORTAL" -o delete >/dev/null 2>&1 || true
fi
log "iscsi import $EXPORT_NAME logged out"
