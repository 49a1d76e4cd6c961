#!/usr/bin/env bash
# Start libvirtd for the local stack on a machine without systemd, idempotently.
# Guests run as root: with the default qemu user, /dev/kvm (0600 root) makes libvirt
# re-probe QEMU on every call (2-4 s each), enough to push fence_xvm past its timeout.
set -euo pipefail

readonly qemu_conf=/etc/libvirt/qemu.conf
readonly pidfile=/run/libvirtd.pid
readonly uri=qemu:///system

ensure_root_guests() {
  local changed=0
  for key in user group; do
    if ! grep -Eq "^${key} = \"root\"" "$qemu_conf"; then
      sed -i -E "/^#?${key} = /d" "$qemu_conf"
      echo "${key} = \"root\"" >>"$qemu_conf"
      changed=1
    fi
  done
  echo "$changed"
}

running() { [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

main() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "libvirtd: must run as root to manage qemu:///system" >&2
    exit 1
  fi
  local changed
  changed=$(ensure_root_guests)
  # libvirt leaves the dnsmasq state folder to systemd-tmpfiles, which is not running here.
  mkdir -p /run/libvirt /var/lib/libvirt/images /var/lib/libvirt/dnsmasq /var/log/libvirt/qemu
  pgrep -x virtlogd >/dev/null || virtlogd -d
  if running && [[ $changed == 1 ]]; then
    echo "libvirtd: qemu.conf changed, restarting"
    kill "$(cat "$pidfile")"
    for _ in $(seq 50); do running || break; sleep 0.1; done
  fi
  if running; then
    echo "libvirtd: running (pid $(cat "$pidfile"))"
  else
    libvirtd -d -p "$pidfile"
    echo "libvirtd: started (pid $(cat "$pidfile"))"
  fi
  for _ in $(seq 100); do
    virsh -c "$uri" version >/dev/null 2>&1 && break
    sleep 0.2
  done
  virsh -c "$uri" list >/dev/null
}

main "$@"
