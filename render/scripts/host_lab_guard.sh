# Hypervisor: no packet for this tenant's network.cidr leaves by the default route (or
# any route less specific than the CIDR), even while the tenant's bridge is down or gone.
#
# Two policy rules ahead of the main table's (32766), both matching only the CIDR:
#   LOOKUP_PRIORITY: look the address up in main, but take no route shorter than the CIDR
#                    (suppress_prefixlength): the bridge's own link route wins while the
#                    bridge is up;
#   BLOCK_PRIORITY:  otherwise the address is unreachable.
# Not an `unreachable CIDR` route in the main table: libvirt refuses to start a network
# when the main table holds any route for exactly its CIDR ("Network is already in use by
# interface *"), so that route would keep an isolated network from starting or restarting.
log "start"
[[ $CIDR =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$ ]] || die "$CIDR is not an IPv4 network"

ip4_int() {
  local IFS=. a b c d
  read -r a b c d <<<"$1"
  echo $(((a << 24) | (b << 16) | (c << 8) | d))
}
is_ip4() { [[ $1 =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]]; }
prefix=${CIDR#*/}
mask=$(((0xffffffff << (32 - prefix)) & 0xffffffff))
net=$(($(ip4_int "${CIDR%/*}") & mask))
in_cidr() { is_ip4 "$1" && ((($(ip4_int "$1") & mask) == net)); }

# What this machine itself uses, "ADDRESS WHAT" a line: its resolvers (systemd-resolved's
# upstream servers too, behind its 127.0.0.53 stub), its addresses and point-to-point
# peers on any interface but the tenant bridge, and the gateways of its routes through
# any other interface. The guard would cut the machine off any of them in the CIDR.
used() {
  local conf
  for conf in /etc/resolv.conf /run/systemd/resolve/resolv.conf; do
    if [[ -r $conf ]]; then
      awk -v conf="$conf" '$1 == "nameserver" { print $2, "nameserver in " conf }' "$conf"
    fi
  done
  ip -4 -o addr show | awk -v br="$BRIDGE" '$2 != br {
    for (i = 3; i < NF; i++) {
      if ($i == "inet") { a = $(i + 1); sub("/.*", "", a); print a, "address on " $2 }
      if ($i == "peer") { a = $(i + 1); sub("/.*", "", a); print a, "peer of " $2 }
    }
  }'
  ip -4 route show table all | awk -v br="$BRIDGE" '{
    gw = ""; dev = ""
    for (i = 1; i < NF; i++) {
      if ($i == "via") gw = $(i + 1)
      if ($i == "dev") dev = $(i + 1)
    }
    if (gw != "" && dev != br) print gw, "gateway on " dev
  }'
}
clashes=()
while read -r address what; do
  if in_cidr "$address"; then
    clashes+=("$address ($what)")
  fi
done < <(used | sort -u)
if ((${#clashes[@]})); then
  printf -v listed '%s, ' "${clashes[@]}"
  die "$CIDR holds what this machine uses: ${listed%, }; a guard would cut it off: give this tenant another network.cidr"
fi

# A rule as `ip rule show` prints it, blanks squeezed (a tab after the priority); grep
# reads to the end, so pipefail sees no SIGPIPE.
has_rule() { ip -4 rule show | sed 's/[[:space:]]\+/ /g; s/ $//' | grep -xF -- "$1: $2" >/dev/null; }
# The lookup first: alone, the block rule would cut the bridge off until it follows.
if ! has_rule "$LOOKUP_PRIORITY" "from all to $CIDR lookup main suppress_prefixlength $SUPPRESS_PREFIXLENGTH"; then
  ip rule add priority "$LOOKUP_PRIORITY" to "$CIDR" lookup main suppress_prefixlength "$SUPPRESS_PREFIXLENGTH"
  changed "rule $LOOKUP_PRIORITY: $CIDR takes no route shorter than /$prefix"
fi
if ! has_rule "$BLOCK_PRIORITY" "from all to $CIDR unreachable"; then
  ip rule add priority "$BLOCK_PRIORITY" to "$CIDR" unreachable
  changed "rule $BLOCK_PRIORITY: $CIDR unreachable without $BRIDGE"
fi
log "done: $CIDR leaves only through $BRIDGE"
