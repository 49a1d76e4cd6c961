# Every guest: the cluster's names in /etc/hosts, and SELinux in the stack's mode.
log "start"
block=$(printf '%s\n' "# gfs2-cluster: begin" "$HOSTS" "# gfs2-cluster: end")
current=$(sed -n '/^# gfs2-cluster: begin$/,/^# gfs2-cluster: end$/p' /etc/hosts)
if [[ $current == "$block" ]]; then
  log "/etc/hosts already lists the cluster"
else
  others=$(sed '/^# gfs2-cluster: begin$/,/^# gfs2-cluster: end$/d' /etc/hosts)
  write_file /etc/hosts 0644 "$others"$'\n'"$block" || true
  log "/etc/hosts updated"
fi

if [[ $SELINUX != none ]]; then
  command -v getenforce >/dev/null || die "selinux is $SELINUX but this image has no SELinux tools"
  if ! grep -qx "SELINUX=$SELINUX" /etc/selinux/config; then
    sed -i -E "s/^SELINUX=.*/SELINUX=$SELINUX/" /etc/selinux/config
    changed "SELinux $SELINUX in /etc/selinux/config"
  fi
  case $SELINUX:$(getenforce) in
    enforcing:Enforcing | permissive:Permissive | disabled:Disabled) ;;
    enforcing:*) setenforce 1 && changed "SELinux enforcing now" ;;
    permissive:*) setenforce 0 && changed "SELinux permissive now" ;;
    disabled:*) log "SELinux is disabled from the next boot" ;;
  esac
  # Lets cluster daemons (pacemaker, dlm) work in enforcing mode.
  if [[ $SELINUX == enforcing ]] && getsebool daemons_enable_cluster_mode 2>/dev/null | grep -q -- '--> off'; then
    setsebool -P daemons_enable_cluster_mode 1
    changed "daemons_enable_cluster_mode on"
  fi
fi
log "done"
