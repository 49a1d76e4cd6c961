#!/bin/bash
set -euo pipefail
STEP=boot-watch
DOMAIN=g2-local-dev-m1
URI=qemu:///system
CONSOLE_LOG=/var/log/libvirt/qemu/g2-local-dev-m1-console.log
ADDRESS=10.77.10.21
SSH_PORT=22
OUTPUT_SECONDS=90
SSH_SECONDS=420
KERNEL_MARK='Linux version'
# Helpers prepended to every node script (render/script.py). Scripts check, then act:
# a second run changes nothing and says so in one line.

log() { printf 'gfs2-cluster[%s@%s]: %s\n' "$STEP" "$(hostname -s)" "$*"; }
die() { log "error: $*" >&2; exit 1; }

# What this run changed on the node. Every successful run ends with one result line,
# "result: changed: WHAT; WHAT" or "result: unchanged"; a second run of the same script
# must say unchanged (the graph runner's rerun check reads this line).
CHANGES=()
# Files removed at exit, whatever the outcome (temporary copies of keys and configs).
CLEANUP=()
note_change() { CHANGES+=("$*"); }
changed() { note_change "$*"; log "$*"; }
finish() {
  local rc=$?
  if ((${#CLEANUP[@]})); then rm -f -- "${CLEANUP[@]}"; fi
  if ((rc == 0)); then
    if ((${#CHANGES[@]})); then
      log "result: changed: $(IFS=';' && echo "${CHANGES[*]}")"
    else
      log "result: unchanged"
    fi
  fi
}
trap finish EXIT

# write_file PATH MODE CONTENT: replaces PATH only when CONTENT differs.
# Returns 0 when it wrote, 1 when PATH already had that content.
write_file() {
  local path=$1 mode=$2 content=$3 tmp
  if [[ -f $path ]] && [[ $(cat "$path"; echo x) == "$content"$'\n'x ]]; then
    return 1
  fi
  mkdir -p "$(dirname "$path")"
  tmp=$(mktemp "$path.XXXXXX")
  printf '%s\n' "$content" >"$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$path"
  note_change "wrote $path"
}

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND once a second.
wait_until() {
  local timeout=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${timeout} s waiting for $what"
    sleep 1
  done
}

pid_gone() { ! kill -0 "$1" 2>/dev/null; }

# A service the cluster owns: started and enabled, so a fenced member rejoins at boot.
# systemd today; SysV init (service/chkconfig) on RHEL/CentOS 5.
service_on() {
  if command -v systemctl >/dev/null; then
    if ! systemctl is-enabled --quiet "$1" 2>/dev/null; then
      systemctl enable --quiet "$1"
      note_change "enabled $1"
    fi
    if ! systemctl is-active --quiet "$1"; then
      systemctl start "$1"
      note_change "started $1"
    fi
  else
    if ! chkconfig --list "$1" 2>/dev/null | grep -q '3:on'; then
      chkconfig "$1" on
      note_change "enabled $1"
    fi
    if ! service "$1" status >/dev/null 2>&1; then
      service "$1" start
      note_change "started $1"
    fi
  fi
}

service_off() {
  if command -v systemctl >/dev/null; then
    if systemctl is-active --quiet "$1" 2>/dev/null; then
      systemctl stop "$1"
      note_change "stopped $1"
    fi
    if systemctl is-enabled --quiet "$1" 2>/dev/null; then
      systemctl disable --quiet "$1"
      note_change "disabled $1"
    fi
  else
    if service "$1" status >/dev/null 2>&1; then
      service "$1" stop
      note_change "stopped $1"
    fi
    if chkconfig --list "$1" 2>/dev/null | grep -q ':on'; then
      chkconfig "$1" off
      note_change "disabled $1"
    fi
  fi
}

# fstab_without MOUNT_POINT: /etc/fstab minus the gfs2 line for MOUNT_POINT.
fstab_without() {
  awk -v mp="$1" '!($2 == mp && $3 == "gfs2")' /etc/fstab
}

# Hypervisor: watch one guest's early boot through its serial console log, right after
# the domain is created and before anything dials its SSH. Under emulation (TCG) a guest
# sometimes hangs in the kernel's delay loop before it prints a line (about one boot in
# 28 here) and a reset cures it: a guest whose log shows no kernel banner within
# OUTPUT_SECONDS is reset once through libvirt and watched again; one that still prints
# nothing, or whose SSH port does not answer within SSH_SECONDS of its banner, stops the
# stack here, naming the domain and its console log. A guest whose SSH already answers
# is up: nothing to watch (a second run), and never reset. Nothing to undo: the watch
# leaves nothing behind (the log is libvirt's, begun afresh at each start of the domain).

virsh_() { virsh -q -c "$URI" "$@"; }

# The guest's sshd greets with "SSH-"; a bare TCP connect could be anything.
ssh_answers() {
  local banner
  # shellcheck disable=SC2016 # $1 and $2 expand in the inner bash
  banner=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && head -c 4 <&3' _ "$ADDRESS" "$SSH_PORT" 2>/dev/null) || return 1
  [[ $banner == SSH- ]]
}

# The kernel's first console line. Only the kernel writes ttyS0 this early (SeaBIOS and
# the direct-boot ROM do not), so any banner is the kernel running; -a: the log may hold
# control characters.
kernel_printed() { [[ -f $CONSOLE_LOG ]] && grep -aqF -- "$KERNEL_MARK" "$CONSOLE_LOG"; }

# wait_output SECONDS: 0 when the kernel printed (or SSH answers) within SECONDS.
wait_output() {
  local deadline=$((SECONDS + $1))
  until kernel_printed || ssh_answers; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

where="its console log is $CONSOLE_LOG on $(hostname -s)"

state=$(virsh_ domstate "$DOMAIN" 2>&1) || die "boot watch: no domain $DOMAIN through $URI: $state"
state=${state%%$'\n'*}
[[ $state == running ]] || die "boot watch: $DOMAIN is $state, not running; $where"

if ssh_answers; then
  log "boot watch: $DOMAIN is up (SSH answers on $ADDRESS:$SSH_PORT)"
  exit 0
fi

if [[ ! -f $CONSOLE_LOG ]]; then
  # The domain was defined without the console <log> (render/domain.py): no sign of its
  # early boot to go by, and a reset without one could cut a healthy boot short.
  log "boot watch: no console log at $CONSOLE_LOG: not watching $DOMAIN's early boot"
elif ! wait_output "$OUTPUT_SECONDS"; then
  silent="printed nothing"
  [[ -s $CONSOLE_LOG ]] && silent="printed no kernel banner ($KERNEL_MARK)"
  virsh_ reset "$DOMAIN" >/dev/null
  changed "boot watch: $DOMAIN $silent in $OUTPUT_SECONDS s (early-boot hang under emulation): reset it once through libvirt"
  wait_output "$OUTPUT_SECONDS" ||
    die "boot watch: $DOMAIN $silent in $OUTPUT_SECONDS s, nor in $OUTPUT_SECONDS s after one reset: it does not boot; $where"
fi
kernel_printed && log "boot watch: $DOMAIN's kernel is running; waiting up to $SSH_SECONDS s for SSH on $ADDRESS:$SSH_PORT"

deadline=$((SECONDS + SSH_SECONDS))
until ssh_answers; do
  if ((SECONDS >= deadline)); then
    if [[ -s $CONSOLE_LOG ]]; then
      printf '%s\n' "--- last lines of $CONSOLE_LOG ---" >&2
      tail -n 20 "$CONSOLE_LOG" | tr -d '\r' >&2
    fi
    die "boot watch: $DOMAIN did not answer SSH on $ADDRESS:$SSH_PORT within $SSH_SECONDS s; $where"
  fi
  state=$(virsh_ domstate "$DOMAIN" 2>&1 | head -n 1) || true
  [[ $state == running ]] || die "boot watch: $DOMAIN stopped during boot ($state); $where"
  sleep 1
done
log "boot watch: $DOMAIN is up (SSH answers on $ADDRESS:$SSH_PORT)"
