#!/usr/bin/env bash
# Boot one throwaway guest from the cached base image and check it over SSH:
# own isolated libvirt network (imgtest-*), qcow2 overlay, direct kernel boot with
# gfs2.* parameters. Everything it creates is removed on exit, failure included.
#
#   image/boot-test.sh              q35 machine (NIC usually enp1s0)
#   IMGTEST_MACHINE=pc image/boot-test.sh   i440fx machine (NIC usually ens3)
#
# Env: IMGTEST_TIMEOUT (seconds to wait for SSH, default 420), IMGTEST_KEEP_LOG (copy
# the serial console log there), IMGTEST_MACHINE (q35|pc), IMGTEST_IMAGE_DIR (boot that
# image instead of building/reusing the current recipe's), IMGTEST_GUEST_CMD (extra
# command to run in the guest and print, for debugging).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly here
readonly machine=${IMGTEST_MACHINE:-q35}
readonly timeout=${IMGTEST_TIMEOUT:-420}
readonly guest_name=imgtest-guest
export LIBVIRT_DEFAULT_URI=qemu:///system

name=imgtest-$$-$RANDOM
work=''
sampler=''
net_defined=0
dom_defined=0

say() { printf '%s\n' "$*"; }
die() { printf 'boot-test: FAIL: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

cleanup() {
  local rc=$?
  set +e
  [[ -z $sampler ]] || kill "$sampler" 2>/dev/null
  [[ -z $sampler ]] || wait "$sampler" 2>/dev/null
  if ((rc != 0)) && [[ -s $work/console.log ]]; then
    say "--- last 40 lines of the serial console ---" >&2
    tail -n 40 "$work/console.log" >&2
  fi
  if [[ -n ${IMGTEST_KEEP_LOG:-} && -s $work/console.log ]]; then
    cp "$work/console.log" "$IMGTEST_KEEP_LOG"
  fi
  if ((dom_defined)); then
    virsh destroy "$name" >/dev/null 2>&1
    virsh undefine "$name" >/dev/null 2>&1
    rm -f "/var/log/libvirt/qemu/$name.log"
  fi
  if ((net_defined)); then
    virsh net-destroy "$name" >/dev/null 2>&1
    virsh net-undefine "$name" >/dev/null 2>&1
  fi
  [[ -z $work ]] || rm -rf "$work"
  local left
  left=$({ virsh list --all --name; virsh net-list --all --name; } 2>/dev/null | grep -Fx "$name")
  if [[ -n $left ]]; then
    say "boot-test: cleanup left $name behind" >&2
    rc=1
  else
    say "cleanup: domain, network, overlay and key removed"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A 10.199.N.0/24 that no host interface or libvirt network uses yet, so parallel
# runs (or the other test suites' networks) don't collide.
free_subnet() {
  local used n start=$((RANDOM % 200))
  used=$(ip -4 -o addr show | awk '{ print $4 }'
    for net in $(virsh net-list --all --name); do virsh net-dumpxml "$net"; done |
      sed -n "s/.*<ip address='\([0-9.]*\)'.*/\1/p")
  for ((n = start; n < start + 256; n++)); do
    if ! grep -q "^10\.199\.$((n % 256))\." <<<"$used"; then
      echo "10.199.$((n % 256))"
      return
    fi
  done
  die "no free 10.199.N.0/24 subnet"
}

ssh_guest() {
  ssh -q -i "$work/id" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o ConnectTimeout=5 "root@$guest_ip" "$@"
}

main() {
  virsh version >/dev/null 2>&1 || "$here/../tools/libvirtd.sh" >/dev/null
  # libvirt writes per-bridge MAC lists here even without dnsmasq; no tmpfiles.d
  # creates it on a machine without systemd.
  mkdir -p /var/lib/libvirt/dnsmasq
  local img=${IMGTEST_IMAGE_DIR:-}
  if [[ -z $img ]]; then
    "$here/build.sh"
    img=$("$here/build.sh" --print-dir)
  fi
  [[ -f $img/manifest.json ]] || die "no image in $img"

  work=$(mktemp -d /var/tmp/imgtest.XXXXXX)
  local subnet
  subnet=$(free_subnet)
  guest_ip=$subnet.10
  ssh-keygen -q -t ed25519 -N '' -C "imgtest@$name" -f "$work/id"
  qemu-img create -q -f qcow2 -F qcow2 -b "$img/disk.qcow2" "$work/disk.qcow2"

  # No <forward>: isolated. No DHCP (addresses come from gfs2.ip) and no DNS, so
  # libvirt starts no dnsmasq for it.
  cat >"$work/net.xml" <<EOF
<network>
  <name>$name</name>
  <dns enable='no'/>
  <ip address='$subnet.1' prefix='24'/>
</network>
EOF
  virsh net-define "$work/net.xml" >/dev/null
  net_defined=1
  virsh net-start "$name" >/dev/null

  local cmdline
  cmdline="console=ttyS0 root=/dev/vda rw gfs2.hostname=$guest_name gfs2.ip=$guest_ip/24 gfs2.gw=$subnet.1"
  cmdline+=" gfs2.sshkey=$(base64 -w0 <"$work/id.pub")"
  cat >"$work/domain.xml" <<EOF
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>1024</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='$machine'>hvm</type>
    <kernel>$img/vmlinux</kernel>
    <initrd>$img/initrd.img</initrd>
    <cmdline>$cmdline</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <clock offset='utc'/>
  <on_reboot>destroy</on_reboot>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$work/disk.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'>
      <source network='$name'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='$work/console.log'/>
      <target port='0'/>
    </serial>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
  virsh define "$work/domain.xml" >/dev/null
  dom_defined=1

  # Host memory: MemAvailable before the guest and its minimum while it boots.
  local mem_before
  mem_before=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
  (
    min=$mem_before
    while sleep 0.5; do
      cur=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
      ((cur < min)) && min=$cur
      echo "$min" >"$work/mem_min"
    done
  ) &
  sampler=$!

  local t0 t_port='' t_ssh=''
  t0=$(now)
  virsh start "$name" >/dev/null
  say "started $name ($machine, TCG) at $guest_ip; waiting up to ${timeout}s for SSH"
  local deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    if [[ -z $t_port ]] && timeout 2 bash -c "exec 3<>/dev/tcp/$guest_ip/22" 2>/dev/null; then
      t_port=$(now)
    fi
    if [[ -n $t_port ]] && ssh_guest true 2>/dev/null; then
      t_ssh=$(now)
      break
    fi
    [[ $(virsh domstate "$name") == running* ]] || die "guest stopped during boot"
    sleep 1
  done
  [[ -n $t_ssh ]] || die "no SSH login within ${timeout}s"

  local out
  out=$(ssh_guest "hostname; ip -br a; systemctl is-enabled corosync pacemaker; lsmod | grep -E 'nbd|gfs2|dlm'" || true)
  say "--- guest says ---"
  say "$out"
  say "------------------"
  grep -qx "$guest_name" <<<"$out" || die "hostname is not $guest_name"
  grep -Eq "^(en|eth)[^ ]* +UP +$guest_ip/24" <<<"$out" || die "$guest_ip/24 not up on an ethernet interface"
  [[ $(grep -cx disabled <<<"$out") == 2 ]] || die "corosync/pacemaker are not both disabled"
  local mod
  for mod in nbd gfs2 dlm; do
    grep -q "^$mod " <<<"$out" || die "module $mod not loaded"
  done

  # Identity, sshd policy, and that a second run of the boot unit changes nothing.
  local checks
  # shellcheck disable=SC2016 # expands in the guest
  checks=$(ssh_guest '
    echo "machine-id: $(cat /etc/machine-id)"
    echo "host-keys: $(ls /etc/ssh/ssh_host_*_key | wc -l)"
    sshd -T | grep -E "^(permitrootlogin|passwordauthentication|kbdinteractiveauthentication) "
    echo "failed-units: $(systemctl list-units --failed --no-legend | wc -l)"
    sum() { md5sum /etc/hosts /etc/hostname /root/.ssh/authorized_keys | md5sum; }
    before=$(sum); systemctl restart gfs2-boot-config.service; after=$(sum)
    echo "rerun-unchanged: $([ "$before" = "$after" ] && echo yes || echo no)"
    echo "enabled: $(systemctl is-enabled dlm lvmlockd pcsd nbd-server iscsid.socket 2>/dev/null | sort | uniq -c | xargs)"
    echo "root-fs: $(findmnt -no SOURCE,FSTYPE,OPTIONS / | cut -c1-40)"
    echo "guest-mem-MiB (total used available): $(free -m | awk "/^Mem:/ { print \$2, \$3, \$7 }")"
    echo "slowest units: $(systemd-analyze blame --no-pager 2>/dev/null | head -n 6 | xargs)"
  ' || true)
  say "$checks"
  grep -Eq '^machine-id: [0-9a-f]{32}$' <<<"$checks" || die "machine-id was not generated"
  grep -qx 'host-keys: 2' <<<"$checks" || die "expected 2 SSH host keys (ed25519, ecdsa)"
  grep -qx 'permitrootlogin without-password' <<<"$checks" || die "root login is not key-only"
  grep -qx 'passwordauthentication no' <<<"$checks" || die "password authentication is on"
  grep -qx 'failed-units: 0' <<<"$checks" || die "failed units in the guest"
  grep -qx 'rerun-unchanged: yes' <<<"$checks" || die "gfs2-boot-config is not idempotent"
  grep -Eq '^enabled: [0-9]+ disabled$' <<<"$checks" || die "a cluster service is enabled"

  if [[ -n ${IMGTEST_GUEST_CMD:-} ]]; then
    say "--- $IMGTEST_GUEST_CMD ---"
    ssh_guest "$IMGTEST_GUEST_CMD" || true
  fi

  local pid hwm mem_min
  pid=$(cat "/run/libvirt/qemu/$name.pid")
  hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
  mem_min=$(cat "$work/mem_min" 2>/dev/null || echo "$mem_before")
  say "RESULT virsh start -> port 22 open: $(elapsed "$t0" "$t_port") s"
  say "RESULT virsh start -> ssh login:    $(elapsed "$t0" "$t_ssh") s"
  say "RESULT qemu peak RSS (VmHWM):        $((hwm / 1024)) MiB"
  say "RESULT host MemAvailable drop (peak): $(((mem_before - mem_min) / 1024)) MiB"
  say "PASS"
}

main "$@"
