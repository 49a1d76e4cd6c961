# Hypervisor: DOMAIN with VCPU vCPUs and MEMORY_KIB of memory (SIZE_KEY.vcpu,
# SIZE_KEY.memoryMib). When its definition says otherwise, the member NODE leaves the
# cluster cleanly, powers off, is given the new size and boots again; this waits until
# it is back with CLONES started on it. The SSH key for NODE arrives on stdin.
virsh_() { virsh -q -c "$URI" "$@"; }
running() { [[ $(virsh_ domstate "$DOMAIN") == running ]]; }
defined=$(virsh_ dumpxml --inactive "$DOMAIN")
have_vcpu=$(sed -nE 's|^ *<vcpu[^>]*>([0-9]+)</vcpu>.*|\1|p' <<<"$defined")
have_kib=$(sed -nE "s|^ *<memory unit='KiB'>([0-9]+)</memory>.*|\1|p" <<<"$defined")
[[ $have_vcpu =~ ^[0-9]+$ && $have_kib =~ ^[0-9]+$ ]] || die "cannot read the vCPUs and memory of $DOMAIN"
resize=1
((have_vcpu != VCPU || have_kib != MEMORY_KIB)) || resize=0
if ((!resize)) && running; then
  log "$DOMAIN has $VCPU vCPUs and $((MEMORY_KIB / 1024)) MiB"
  exit 0
fi
asked="$have_vcpu -> $VCPU vCPUs, $((have_kib / 1024)) -> $((MEMORY_KIB / 1024)) MiB"
if ((resize)) && [[ -n $REFUSAL ]]; then
  die "$SIZE_KEY.vcpu/$SIZE_KEY.memoryMib ($asked): $REFUSAL; nothing was changed"
fi

key=$(mktemp)
CLEANUP+=("$key")
chmod 600 "$key"
cat >"$key"
ssh_() {
  ssh -i "$key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
    -o LogLevel=ERROR -o ConnectTimeout=10 "$SSH_USER@$ADDRESS" "$@"
}

if ((resize)); then
  log "$DOMAIN: $asked"
  if running; then
    # pacemaker first: it stops the node's resources (GFS2 unmounted, locks released) and
    # leaves; then corosync. The others keep quorum and fence nobody.
    ssh_ "systemctl stop pacemaker && systemctl stop corosync" || die "$NODE did not leave the cluster"
    note_change "$NODE left the cluster"
    ssh_ "systemctl poweroff" || true
    deadline=$((SECONDS + 180))
    while running && ((SECONDS < deadline)); do sleep 2; done
    # Out of the cluster with nothing shared mounted: a power-off loses nothing shared.
    if running; then virsh_ destroy "$DOMAIN" >/dev/null; fi
  fi
  # Raised: the maximum first; lowered: the current value first.
  if ((VCPU > have_vcpu)); then order=(--maximum ""); else order=("" --maximum); fi
  for flag in "${order[@]}"; do virsh_ setvcpus "$DOMAIN" "$VCPU" --config ${flag:+"$flag"} >/dev/null; done
  if ((MEMORY_KIB > have_kib)); then
    virsh_ setmaxmem "$DOMAIN" "$MEMORY_KIB" --config >/dev/null
    virsh_ setmem "$DOMAIN" "$MEMORY_KIB" --config >/dev/null
  else
    virsh_ setmem "$DOMAIN" "$MEMORY_KIB" --config >/dev/null
    virsh_ setmaxmem "$DOMAIN" "$MEMORY_KIB" --config >/dev/null
  fi
fi
virsh_ start "$DOMAIN" >/dev/null
changed "$DOMAIN started with $VCPU vCPUs and $((MEMORY_KIB / 1024)) MiB"
if [[ -n $BOOT_WATCH ]]; then bash -c "$BOOT_WATCH" </dev/null || die "$DOMAIN did not come up after its restart"; fi
wait_until "$TIMEOUT" "$NODE to answer SSH" ssh_ true
[[ -n $CLONES ]] || exit 0
mapfile -t clones <<<"$CLONES"
ssh_ "python3 - wait-started-on $NODE $CLUSTER_TIMEOUT ${clones[*]}" <<<"$CIB_TOOL" ||
  die "$NODE is back but ${clones[*]} did not start on it"
log "$NODE back in the cluster: ${clones[*]} started there"
