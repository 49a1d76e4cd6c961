#!/usr/bin/env bash
# The Pulumi toolchain at one version (tools/versions.env), built into the per-user cache
# (tools/env.sh): the CLI from the Go module proxy, the Python language host and both
# provider plugins from source archives (../shared/upstream by default, checked against
# tools/upstream.sha256), every dependency from the proxy. Each step is skipped when its
# output is already there.
set -euo pipefail

# shellcheck source=tools/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

readonly bin=$GFS2_TOOLCHAIN_DIR/bin
readonly work=$GFS2_CACHE_DIR/toolchain/work
readonly plugins=$GFS2_CACHE_DIR/plugins
readonly sums=$GFS2_ROOT/tools/upstream.sha256
readonly version_pkg=github.com/pulumi/pulumi/sdk/v3/go/common/version.Version
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

log() { printf 'toolchain: %s\n' "$*"; }

# One message naming the piece and every way to provide it; stops setup.
cannot_provide() {
  local piece=$1 archive=$2
  cat >&2 <<EOF
toolchain: cannot provide $piece. Provide it one of these ways, then run make setup again:
  - a release archive in GFS2_PLUGIN_DIR (pulumi-resource-NAME-vVERSION-linux-amd64.tar.gz);
  - the source archive $archive in GFS2_UPSTREAM_DIR (now: ${GFS2_UPSTREAM_DIR:-unset});
  - a machine with internet, where \`pulumi plugin install\` fetches the official release.
EOF
  exit 1
}

# True when ARCHIVE is in GFS2_UPSTREAM_DIR; stops setup when its sha256 is not the one
# in tools/upstream.sha256 (nothing is built from an archive that does not match).
upstream_has() {
  local archive=$1 dir=${GFS2_UPSTREAM_DIR:-}
  [[ -n $dir && -f $dir/$archive ]] || return 1
  local want got
  want=$(awk -v a="$archive" '$2 == a {print $1}' "$sums")
  got=$(sha256sum "$dir/$archive" | cut -d' ' -f1)
  if [[ -z $want || $got != "$want" ]]; then
    echo "toolchain: $dir/$archive has sha256 $got, tools/upstream.sha256 says ${want:-nothing}: not building from it" >&2
    exit 1
  fi
}

# Unpacks a checked ARCHIVE of GFS2_UPSTREAM_DIR into a fresh folder; prints the one
# top-level folder the archive holds (git archive --prefix).
unpack_upstream() {
  local archive=$1 into=$work/src/${1%.tar.gz}
  rm -rf "$into" && mkdir -p "$into"
  tar -xzf "$GFS2_UPSTREAM_DIR/$archive" -C "$into"
  find "$into" -mindepth 1 -maxdepth 1 -type d
}

# go build in DIR with the module logs kept quiet unless something fails.
quiet_go() {
  local dir=$1 log_file; shift
  log_file=$(mktemp "$work/go.XXXXXX.log")
  (cd "$dir" && "$@" >"$log_file" 2>&1) || { cat "$log_file" >&2; rm -f "$log_file"; return 1; }
  rm -f "$log_file"
}

build_cli() {
  [[ -x $bin/pulumi ]] && return
  local started=$SECONDS dir=$work/cli
  log "building the pulumi CLI v$PULUMI_VERSION from the Go module proxy (about 5 minutes cold)"
  rm -rf "$dir" && mkdir -p "$dir"
  (
    cd "$dir"
    go mod init gfs2-cluster/toolchain >/dev/null 2>&1
    go mod edit -require="github.com/pulumi/pulumi/pkg/v3@v$PULUMI_VERSION" -require="github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION"
    # pkg/v3 replaces clipboard with a fork; a wrapper module must repeat non-local replaces.
    go mod edit -replace=github.com/atotto/clipboard=github.com/tgummerer/clipboard@v0.0.0-20241001131231-d02d263e614e
    printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"\n' >tools.go
  )
  quiet_go "$dir" go mod tidy
  quiet_go "$dir" go build -trimpath -ldflags "-s -w -X $version_pkg=v$PULUMI_VERSION" -o "$bin/pulumi.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  mv "$bin/pulumi.tmp" "$bin/pulumi"
  rm -rf "$dir"
  log "built pulumi v$PULUMI_VERSION in $((SECONDS - started)) s ($(du -h "$bin/pulumi" | cut -f1))"
}

build_language_host() {
  [[ -x $bin/pulumi-language-python && -x $bin/pulumi-language-python-exec ]] && return
  local archive=pulumi-language-python-$PULUMI_VERSION.tar.gz started=$SECONDS src
  upstream_has "$archive" || cannot_provide "pulumi-language-python v$PULUMI_VERSION" "$archive"
  src=$(unpack_upstream "$archive")
  log "building pulumi-language-python v$PULUMI_VERSION from $archive"
  local host=$src/sdk/python/cmd/pulumi-language-python
  # The archive points pkg/v3 and sdk/v3 at its own tree; take both from the proxy instead.
  quiet_go "$host" go mod edit -dropreplace=github.com/pulumi/pulumi/pkg/v3 -dropreplace=github.com/pulumi/pulumi/sdk/v3 \
    -require="github.com/pulumi/pulumi/pkg/v3@v$PULUMI_VERSION" -require="github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION"
  quiet_go "$host" go mod tidy
  quiet_go "$host" go build -trimpath -ldflags "-s -w -X $version_pkg=v$PULUMI_VERSION" -o "$bin/pulumi-language-python.tmp" .
  install -m 0755 "$src/sdk/python/cmd/pulumi-language-python-exec" "$bin/"
  install -m 0755 "$src/sdk/python/dist/pulumi-resource-pulumi-python" "$bin/"
  mv "$bin/pulumi-language-python.tmp" "$bin/pulumi-language-python"
  rm -rf "$(dirname "$src")"
  log "built pulumi-language-python v$PULUMI_VERSION in $((SECONDS - started)) s ($(du -h "$bin/pulumi-language-python" | cut -f1))"
}

plugin_installed() {
  [[ -x $PULUMI_HOME/plugins/resource-$1-v$2/pulumi-resource-$1 ]]
}

build_command_plugin() {
  local out=$1 archive=pulumi-command-$COMMAND_VERSION.tar.gz src
  upstream_has "$archive" || return 1
  src=$(unpack_upstream "$archive")
  log "building pulumi-resource-command v$COMMAND_VERSION from $archive"
  quiet_go "$src/provider" go build -trimpath \
    -ldflags "-s -w -X github.com/pulumi/pulumi-command/provider/pkg/version.Version=$COMMAND_VERSION" \
    -o "$out" ./cmd/pulumi-resource-command || return 1
  rm -rf "$(dirname "$src")"
}

build_libvirt_plugin() {
  local out=$1 archive=pulumi-libvirt-$LIBVIRT_VERSION.tar.gz tf_archive=terraform-provider-libvirt-$TF_LIBVIRT_VERSION.tar.gz
  local src tf
  upstream_has "$archive" && upstream_has "$tf_archive" || return 1
  src=$(unpack_upstream "$archive")
  tf=$(unpack_upstream "$tf_archive")
  log "building pulumi-resource-libvirt v$LIBVIRT_VERSION from $archive and $tf_archive"
  local provider=$src/provider
  quiet_go "$provider" go mod edit -replace="github.com/dmacvicar/terraform-provider-libvirt=$tf" || return 1
  quiet_go "$provider" go mod tidy || return 1
  # The provider embeds its schema with the version stamped in.
  quiet_go "$provider/cmd/pulumi-resource-libvirt" env VERSION="$LIBVIRT_VERSION" go run ./generate.go || return 1
  quiet_go "$provider" go build -trimpath \
    -ldflags "-s -w -X github.com/pulumi/pulumi-libvirt/provider/pkg/version.Version=$LIBVIRT_VERSION" \
    -o "$out" ./cmd/pulumi-resource-libvirt || return 1
  rm -rf "$(dirname "$src")" "$(dirname "$tf")"
}

# Where a plugin comes from, in this order: already installed; a release archive in
# GFS2_PLUGIN_DIR; the source archive in GFS2_UPSTREAM_DIR, built into the cache keyed by
# version; the official release through `pulumi plugin install` (a machine with internet).
release_archive() { echo "${GFS2_PLUGIN_DIR:-/nonexistent}/pulumi-resource-$1-v$2-linux-amd64.tar.gz"; }
built_plugin() { echo "$plugins/$1-v$2/pulumi-resource-$1"; }

# Builds the plugin from source when nothing earlier in the order provides it; returns 1
# when its source archive is not there either (provide_plugin then tries the internet).
build_plugin_if_needed() {
  local name=$1 version=$2 built started=$SECONDS
  built=$(built_plugin "$name" "$version")
  if plugin_installed "$name" "$version" || [[ -f $(release_archive "$name" "$version") || -x $built ]]; then
    return 0
  fi
  mkdir -p "$(dirname "$built")"
  "build_${name}_plugin" "$built.tmp" || return 1
  mv "$built.tmp" "$built"
  log "built $name v$version in $((SECONDS - started)) s ($(du -h "$built" | cut -f1))"
}

provide_plugin() {
  local name=$1 version=$2 release built
  plugin_installed "$name" "$version" && return
  release=$(release_archive "$name" "$version")
  built=$(built_plugin "$name" "$version")
  if [[ -f $release ]]; then
    pulumi plugin install resource "$name" "$version" --file "$release" >/dev/null
    log "installed $name v$version from $release"
  elif [[ -x $built ]]; then
    pulumi plugin install resource "$name" "$version" --file "$built" >/dev/null
    log "installed $name v$version from $built"
  elif pulumi plugin install resource "$name" "$version" >/dev/null 2>&1; then
    log "installed $name v$version from its official release"
  else
    cannot_provide "the $name provider plugin v$version" "pulumi-$name-$version.tar.gz"
  fi
}

main() {
  mkdir -p "$bin" "$work" "$plugins"
  # The three Go builds are independent: side by side they share the module downloads'
  # waiting time (about 5 minutes cold instead of about 9 one after the other).
  local pids=() failed=0
  build_cli & pids+=($!)
  build_plugin_if_needed command "$COMMAND_VERSION" & pids+=($!)
  build_plugin_if_needed libvirt "$LIBVIRT_VERSION" & pids+=($!)
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [[ -x $bin/pulumi ]] || exit 1
  build_language_host
  # A failed source build is reported above; the internet is the last way left.
  ((failed == 0)) || log "a plugin build failed; trying the official releases"
  provide_plugin command "$COMMAND_VERSION"
  provide_plugin libvirt "$LIBVIRT_VERSION"
  log "pulumi $(pulumi version); plugins: $(pulumi plugin ls --json | python3 -c '
import json, sys
print(", ".join(p["name"] + " " + p["version"] for p in json.load(sys.stdin) or []))')"
}

main "$@"
