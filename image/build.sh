#!/usr/bin/env bash
# Build the guest base image (Debian rootfs + kernel + initrd) for gfs2-cluster, or
# reuse it: images are cached outside the clone, keyed by a hash of the recipe
# (this file, packages.txt, overlay/ and the suite).
#
#   image/build.sh                  build if needed; prints "image: cached|built <dir>"
#   image/build.sh --print-dir      the image directory for the current recipe
#   image/build.sh --print-hash     the recipe hash
#   image/build.sh --print-mirror   "<mirror> <suite>" as read from the host's apt sources
#   image/build.sh --check-packages check packages.txt against the mirror and exit
#
# Env: GFS2_CACHE_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/gfs2-cluster),
#      GFS2_DEBIAN_MIRROR (default: host's apt sources), GFS2_DEBIAN_SUITE (default:
#      host's codename). Guest kernel command line:
#      console=ttyS0 root=/dev/vda rw gfs2.hostname=N gfs2.ip=A/P [gfs2.gw=G] gfs2.sshkey=B64
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly here
readonly image_size=4G
readonly keyring=/usr/share/keyrings/debian-archive-keyring.gpg
# Overridable only so the tests can feed fixture files.
readonly apt_etc=${GFS2_APT_ETC:-/etc/apt}
readonly os_release=${GFS2_OS_RELEASE:-/etc/os-release}
# Units the Pulumi program configures and starts itself; absent ones are skipped.
readonly cluster_units=(
  corosync.service pacemaker.service pcsd.service pcsd-ruby.service dlm.service
  lvmlockd.service lvmlocks.service nbd-server.service rtslib-fb-targetctl.service
  target.service iscsid.service iscsid.socket open-iscsi.service fence_virtd.service
)

# Turn signals into exits so EXIT traps remove half-built temp dirs.
trap 'exit 130' INT
trap 'exit 143' TERM

say() { printf '%s\n' "$*"; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }

cache_root() { printf '%s\n' "${GFS2_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gfs2-cluster}"; }

suite() {
  if [[ -n ${GFS2_DEBIAN_SUITE:-} ]]; then
    printf '%s\n' "$GFS2_DEBIAN_SUITE"
    return
  fi
  local codename
  codename=$(awk -F= '$1 == "VERSION_CODENAME" { gsub(/"/, "", $2); print $2 }' "$os_release")
  [[ -n $codename ]] || die "no VERSION_CODENAME in $os_release; set GFS2_DEBIAN_SUITE"
  printf '%s\n' "$codename"
}

# The suite is hashed too: the same recipe on another suite is another image.
recipe_hash() {
  local s
  s=$(suite)
  (
    cd "$here"
    {
      printf 'suite %s\n' "$s"
      find overlay -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum -- build.sh packages.txt
    } | sha256sum | cut -c1-16
  )
}

image_dir() { printf '%s/images/%s\n' "$(cache_root)" "$(recipe_hash)"; }

# Package names from packages.txt, comments and blanks dropped.
packages() { sed -e 's/#.*//' -e 's/[[:space:]]\+/\n/g' "$here/packages.txt" | sed '/^$/d'; }

# First Debian "main" mirror for the suite: sources.list first, then sources.list.d in
# order (apt's own order), both one-line and deb822 formats. Third-party repos that
# reuse the codename are skipped unless their URI path ends in /debian or they are
# signed by Debian's archive keyring.
detect_mirror() {
  local suite=$1 files=()
  [[ -f $apt_etc/sources.list ]] && files+=("$apt_etc/sources.list")
  local f
  for f in "$apt_etc"/sources.list.d/*; do
    [[ $f == *.list || $f == *.sources ]] && files+=("$f")
  done
  ((${#files[@]})) || return 0
  awk -v suite="$suite" '
    function debian(uri, signed) {
      sub(/\/+$/, "", uri)
      return uri ~ /\/debian$/ || signed ~ /debian-archive/
    }
    function has(list, word,   n, a, i) {
      n = split(list, a, /[ \t]+/)
      for (i = 1; i <= n; i++) if (a[i] == word) return 1
      return 0
    }
    function pick(uri) { sub(/\/+$/, "", uri); print uri; found = 1; exit }
    function stanza_end() {
      if (tolower(f["enabled"]) != "no" && has(f["types"], "deb") &&
          has(f["suites"], suite) && has(f["components"], "main")) {
        split(f["uris"], u, /[ \t]+/)
        if (debian(u[1], f["signed-by"])) pick(u[1])
      }
      delete f
    }
    FNR == 1 { if (deb822) stanza_end(); deb822 = FILENAME ~ /\.sources$/; key = "" }
    /^[ \t]*#/ { next }
    !deb822 {
      line = $0; signed = ""
      if ($1 != "deb") next
      if (match(line, /\[[^]]*\]/)) {
        opts = substr(line, RSTART + 1, RLENGTH - 2)
        line = substr(line, 1, RSTART - 1) substr(line, RSTART + RLENGTH)
        if (match(opts, /signed-by=[^ \t]*/)) signed = substr(opts, RSTART, RLENGTH)
      }
      n = split(line, w, /[ \t]+/)
      comps = ""
      for (i = 4; i <= n; i++) comps = comps " " w[i]
      if (w[3] == suite && has(comps, "main") && debian(w[2], signed)) pick(w[2])
      next
    }
    /^[ \t]*$/ { stanza_end(); key = ""; next }
    /^[ \t]/ { if (key != "") f[key] = f[key] " " $0; next }
    {
      key = tolower(substr($0, 1, index($0, ":") - 1))
      f[key] = substr($0, index($0, ":") + 1)
      gsub(/^[ \t]+|[ \t]+$/, "", f[key])
    }
    END { if (!found && deb822) stanza_end() }
  ' "${files[@]}"
}

mirror() {
  local suite=$1 m
  if [[ -n ${GFS2_DEBIAN_MIRROR:-} ]]; then
    printf '%s\n' "${GFS2_DEBIAN_MIRROR%/}"
    return
  fi
  m=$(detect_mirror "$suite")
  [[ -n $m ]] || die "no Debian mirror for suite '$suite' (component main) in $apt_etc/sources.list{,.d/}; set GFS2_DEBIAN_MIRROR"
  printf '%s\n' "$m"
}

# Resolve packages.txt against the mirror with a private apt state, so that a typo
# fails in seconds with the names instead of minutes into mmdebstrap.
check_packages() (
  local mirror=$1 suite=$2 tmp missing
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now
  trap "rm -rf '$tmp'" EXIT
  mkdir -p "$tmp"/etc/sources.list.d "$tmp"/etc/preferences.d "$tmp"/lists/partial "$tmp"/cache/archives/partial
  printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$mirror" "$suite" >"$tmp/etc/sources.list"
  : >"$tmp/status"
  local apt_opts=(
    -o "Dir::Etc=$tmp/etc" -o "Dir::State::Lists=$tmp/lists" -o "Dir::State::status=$tmp/status"
    -o "Dir::Cache=$tmp/cache" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
    -o "Acquire::Languages=none" -o "APT::Architecture=amd64" -o "APT::Architectures=amd64"
    -o "APT::Sandbox::User=root"
  )
  # apt-get update exits 0 when a fetch fails ("W: Failed to fetch"): check the index.
  local indexes=()
  apt-get -q "${apt_opts[@]}" update >"$tmp/update.log" 2>&1 || true
  shopt -s nullglob
  indexes=("$tmp"/lists/*_Packages*)
  if ((${#indexes[@]} == 0)) || grep -q '^E:' "$tmp/update.log"; then
    cat "$tmp/update.log" >&2
    die "cannot read the package index of $mirror $suite main"
  fi
  missing=$(comm -23 <(packages | LC_ALL=C sort -u) \
    <(apt-cache "${apt_opts[@]}" dumpavail | awk '/^Package: / { print $2 }' | LC_ALL=C sort -u))
  [[ -z $missing ]] || die "not in $mirror $suite main: $(echo "$missing" | paste -sd' ')"
)

# Offline changes to the finished rootfs: overlay, services, identity.
customize_rootfs() {
  local root=$1 unit
  cp -a --no-preserve=ownership "$here/overlay/." "$root/"
  # Modes are set here so the git checkout's modes don't matter.
  chmod 0755 "$root/usr/local/sbin/gfs2-boot-config"
  chroot "$root" systemctl enable gfs2-boot-config.service serial-getty@ttyS0.service
  for unit in "${cluster_units[@]}"; do
    if [[ -e $root/lib/systemd/system/$unit || -e $root/etc/init.d/${unit%.service} ]]; then
      chroot "$root" systemctl disable "$unit"
      say "  disabled $unit"
    fi
  done
  # Guests have no route to the mirror, and the root fs is not on LVM: these would
  # only burn TCG CPU (e2scrub_reap alone takes ~20 s at every boot).
  chroot "$root" systemctl disable apt-daily.timer apt-daily-upgrade.timer \
    e2scrub_reap.service e2scrub_all.timer
  # Per-guest identity: empty machine-id is filled at boot (not a "first boot", so no
  # presets re-enable units); host keys are made by gfs2-boot-config.
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
  echo gfs2-node >"$root/etc/hostname"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
  # mmdebstrap copies the host's resolver config; guests get none.
  rm -f "$root/etc/resolv.conf"
  : >"$root/etc/resolv.conf"
}

# Decompress the ELF vmlinux out of a bzImage (after the kernel's scripts/extract-vmlinux):
# try each compressor at each offset where its magic appears, keep the first ELF.
extract_vmlinux() {
  local img=$1 out=$2 magic pattern cmd pos
  # magic (octal escapes for tr) | placeholder one shorter than the magic | decompressor
  local -a tries=(
    '\037\213\010|xy|gzip -dc'
    '\3757zXZ\000|abcde|xz -dc'
    '(\265/\375|xxx|zstd -dcq'
    'BZh|xy|bzip2 -dc'
    '\135\000\000\000|xxx|xz -dc --format=lzma'
    '\002!L\030|xxx|lz4 -dc'
  )
  local try
  for try in "${tries[@]}"; do
    IFS='|' read -r magic pattern cmd <<<"$try"
    command -v "${cmd%% *}" >/dev/null || continue
    # tr turns each magic's first byte into a newline and the rest into the
    # placeholder, so grep -b reports offsets; 1-based pos is then the magic's start.
    for pos in $(tr "$magic\n$pattern" "\n$pattern=" <"$img" | LC_ALL=C grep -abo "^$pattern" | cut -d: -f1); do
      tail -c+"$pos" "$img" | $cmd >"$out" 2>/dev/null || true
      if [[ $(head -c4 "$out" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]]; then
        return 0
      fi
    done
  done
  rm -f "$out"
  return 1
}

json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')"; }

build() {
  local hash=$1 out=$2 mirror=$3 suite=$4
  local images_dir tmp start step_start
  images_dir=$(dirname "$out")
  start=$SECONDS

  say "==> package check ($mirror $suite): start"
  check_packages "$mirror" "$suite"
  say "==> package check: done ($((SECONDS - start))s, $(packages | wc -l) packages)"

  tmp=$(mktemp -d "$images_dir/.build-$hash.XXXXXX")
  # shellcheck disable=SC2064 # expand now: $tmp is local
  trap "cleanup_tmp '$tmp'" EXIT
  local root=$tmp/rootfs log=$tmp/build.log

  step_start=$SECONDS
  say "==> mmdebstrap $suite rootfs: start (log: $log)"
  if ! mmdebstrap --mode=root --variant=minbase --format=directory \
    --components=main --include="$(packages | paste -sd,)" \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    "$suite" "$root" "deb [signed-by=$keyring] $mirror $suite main" >"$log" 2>&1; then
    die "mmdebstrap failed"
  fi
  say "==> mmdebstrap: done ($((SECONDS - step_start))s, $(du -sh "$root" | cut -f1))"

  say "==> customize rootfs: start"
  customize_rootfs "$root" >>"$log" 2>&1
  say "==> customize rootfs: done (disabled: $(sed -n 's/^  disabled //p' "$log" | paste -sd' '))"

  local kver kernels=("$root"/boot/vmlinuz-*)
  [[ -e ${kernels[0]} ]] || die "no kernel in the rootfs"
  kver=$(printf '%s\n' "${kernels[@]##*/vmlinuz-}" | sort -V | tail -n1)
  say "==> kernel $kver: extracting vmlinux, copying initrd"
  extract_vmlinux "$root/boot/vmlinuz-$kver" "$tmp/vmlinux" || die "could not extract vmlinux from vmlinuz-$kver"
  cp "$root/boot/initrd.img-$kver" "$tmp/initrd.img"
  dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' |
    awk '$1 == "ii" { print $2, $3 }' >"$tmp/packages.installed.txt"

  step_start=$SECONDS
  say "==> disk image (ext4 $image_size, qcow2): start"
  truncate -s "$image_size" "$tmp/disk.raw"
  mkfs.ext4 -q -F -L gfs2-root -m 1 -d "$root" "$tmp/disk.raw"
  rm -rf --one-file-system "$root"
  qemu-img convert -O qcow2 "$tmp/disk.raw" "$tmp/disk.qcow2"
  rm -f "$tmp/disk.raw"
  say "==> disk image: done ($((SECONDS - step_start))s)"

  {
    printf '{\n'
    printf '  "recipe_hash": %s,\n' "$(json_str "$hash")"
    printf '  "suite": %s,\n' "$(json_str "$suite")"
    printf '  "mirror": %s,\n' "$(json_str "$mirror")"
    printf '  "packages_requested": %s,\n' "$(packages | wc -l)"
    printf '  "package_count": %s,\n' "$(wc -l <"$tmp/packages.installed.txt")"
    printf '  "kernel_version": %s,\n' "$(json_str "$kver")"
    printf '  "kernel_cmdline": %s,\n' "$(json_str "console=ttyS0 root=/dev/vda rw")"
    printf '  "kernel_cmdline_params": %s,\n' \
      "$(json_str "gfs2.hostname=NAME gfs2.ip=ADDR/PREFIX [gfs2.gw=ADDR] gfs2.sshkey=BASE64")"
    printf '  "sizes": {"disk.qcow2": %s, "disk_virtual": %s, "vmlinux": %s, "initrd.img": %s},\n' \
      "$(stat -c %s "$tmp/disk.qcow2")" "$(qemu-img info --output=json "$tmp/disk.qcow2" | awk -F'[:,]' '/"virtual-size"/ { gsub(/ /, "", $2); print $2; exit }')" \
      "$(stat -c %s "$tmp/vmlinux")" "$(stat -c %s "$tmp/initrd.img")"
    printf '  "build_seconds": %s,\n' "$((SECONDS - start))"
    printf '  "built_at": %s\n' "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
    printf '}\n'
  } >"$tmp/manifest.json.part"
  chmod 755 "$tmp"
  # Data on disk before the manifest that vouches for it.
  sync "$tmp/disk.qcow2" "$tmp/vmlinux" "$tmp/initrd.img" "$tmp/manifest.json.part"
  # The manifest marks completeness, and the directory only appears under its final
  # name once everything is in it.
  mv "$tmp/manifest.json.part" "$tmp/manifest.json"
  rm -rf --one-file-system "$out"
  mv -T "$tmp" "$out"
  trap - EXIT
}

# Removes a failed build's temp dir, unmounting anything mmdebstrap left mounted.
cleanup_tmp() {
  local rc=$? tmp=$1 mnt
  [[ -d $tmp ]] || return 0
  if ((rc != 0)) && [[ -s $tmp/build.log ]]; then
    echo "--- last 30 lines of the build log ---" >&2
    tail -n 30 "$tmp/build.log" >&2
  fi
  while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || true
  done < <(awk -v p="$tmp/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r)
  rm -rf --one-file-system "$tmp"
}

main() {
  case ${1:-} in
    --print-hash) recipe_hash; return ;;
    --print-dir) image_dir; return ;;
    --print-mirror)
      local s m
      s=$(suite)
      m=$(mirror "$s")
      printf '%s %s\n' "$m" "$s"
      return
      ;;
    --check-packages)
      local s m
      s=$(suite)
      m=$(mirror "$s")
      check_packages "$m" "$s"
      say "packages: all $(packages | wc -l) found in $m $s main"
      return
      ;;
    '') ;;
    *) die "unknown argument: $1 (see the header of $0)" ;;
  esac

  local hash out
  hash=$(recipe_hash)
  out=$(cache_root)/images/$hash
  if [[ -f $out/manifest.json ]]; then
    say "image: cached $out"
    return
  fi

  [[ $(id -u) -eq 0 ]] || die "building needs root (mmdebstrap --mode=root, chroot)"
  local tool
  for tool in mmdebstrap mkfs.ext4 qemu-img apt-get flock; do
    command -v "$tool" >/dev/null || die "missing $tool (apt-get install mmdebstrap e2fsprogs qemu-utils)"
  done
  mkdir -p "$(dirname "$out")"
  # One builder per recipe; a second one waits, then finds the image cached.
  exec {lock}>"$(dirname "$out")/.lock-$hash"
  if ! flock -n "$lock"; then
    say "==> waiting for another build of $hash"
    flock "$lock"
  fi
  if [[ -f $out/manifest.json ]]; then
    say "image: cached $out"
    return
  fi
  # Leftovers of builds that were killed outright (the lock says none is running).
  local stale
  for stale in "$(dirname "$out")/.build-$hash".*; do
    [[ -e $stale ]] || continue
    say "==> removing $stale (an interrupted build)"
    cleanup_tmp "$stale"
  done

  local suite mirror
  suite=$(suite)
  mirror=$(mirror "$suite")
  build "$hash" "$out" "$mirror" "$suite"
  say "image: built $out"
}

# Sourcing (tests) defines the functions only.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
