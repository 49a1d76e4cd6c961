# The member logs in to TARGET_IQN at PORTAL as INITIATOR_IQN; LUN 0 appears as DEVICE.
# node.startup=automatic lets LOGIN_SERVICE log in again at boot, and UNIT_NAME holds
# the cluster stack back until the LUN is there.

INITIATOR_FILE=/etc/iscsi/initiatorname.iscsi

has_record() { iscsiadm -m node -T "$TARGET_IQN" -p "$PORTAL" >/dev/null 2>&1; }
automatic() { iscsiadm -m node -T "$TARGET_IQN" -p "$PORTAL" 2>/dev/null | grep -qx 'node.startup = automatic'; }
# `iscsiadm -m session` lines: tcp: [1] 10.0.0.1:3260,1 iqn.... (non-flash)
logged_in() {
  iscsiadm -m session 2>/dev/null |
    awk -v p="$PORTAL," -v t="$TARGET_IQN" 'index($3, p) == 1 && $4 == t { found = 1 } END { exit !found }'
}
enabled() { systemctl is-enabled --quiet "$1"; }

changed=()
renamed=0
if write_file "$INITIATOR_FILE" 0644 "InitiatorName=$INITIATOR_IQN"; then
  changed+=(initiator-name)
  renamed=1
fi
if write_file "$UNIT_FILE" 0644 "$UNIT"; then
  changed+=(unit)
  systemctl daemon-reload
fi

if ((${#changed[@]} == 0)) && has_record && automatic && logged_in && [[ -b $DEVICE ]] &&
  enabled "$LOGIN_SERVICE" && enabled "$UNIT_NAME"; then
  log "iscsi import $EXPORT_NAME unchanged: $DEVICE"
  exit 0
fi

changed "logging in to $TARGET_IQN at $PORTAL as $INITIATOR_IQN (changed: ${changed[*]:-nothing})"
# iscsid reads the initiator name when it starts.
if ((renamed)) && systemctl is-active --quiet iscsid; then systemctl restart iscsid; fi
service_on iscsid
if ! has_record; then
  # -o new: records of other targets behind this portal keep their settings.
  iscsiadm -m discoverydb -t sendtargets -p "$PORTAL" -o new --discover >/dev/null
fi
has_record || die "$PORTAL does not offer $TARGET_IQN to $INITIATOR_IQN"
if ! automatic; then
  iscsiadm -m node -T "$TARGET_IQN" -p "$PORTAL" -o update -n node.startup -v automatic
fi
if ! logged_in; then iscsiadm -m node -T "$TARGET_IQN" -p "$PORTAL" --login >/dev/null; fi
service_on "$LOGIN_SERVICE"
wait_until 60 "$DEVICE" test -b "$DEVICE"
service_on "$UNIT_NAME"
log "iscsi import $EXPORT_NAME logged in: $DEVICE"
