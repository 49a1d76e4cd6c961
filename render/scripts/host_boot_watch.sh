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
