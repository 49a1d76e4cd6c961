# The tenant's fence_xvm key arrives base64 on stdin; it never appears in command text.
# Decoded straight into a file: the key is binary and a shell variable would drop NULs.
install -d -m 0700 "$(dirname "$KEY_PATH")"
tmp=$(mktemp "$KEY_PATH.XXXXXX")
CLEANUP+=("$tmp")
base64 -d >"$tmp" || die "the fence key on stdin is not base64"
[[ -s $tmp ]] || die "empty fence key on stdin"
if cmp -s "$tmp" "$KEY_PATH"; then
  log "fence key unchanged"
else
  chmod 0600 "$tmp"
  mv -f "$tmp" "$KEY_PATH"
  changed "fence key written to $KEY_PATH"
fi
