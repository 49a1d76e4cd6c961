#!/usr/bin/env bash
# The Pulumi toolchain, built from Go modules into the per-user cache (tools/env.sh).
# Nothing comes from anywhere but the Go module proxy; every step is skipped when its
# output is already in the cache.
set -euo pipefail

# shellcheck source=tools/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

readonly bin=$GFS2_TOOLCHAIN_DIR/bin
readonly work=$GFS2_TOOLCHAIN_DIR/work
readonly version_pkg=github.com/pulumi/pulumi/sdk/v3/go/common/version.Version
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

log() { printf 'toolchain: %s\n' "$*"; }

# Prints the directory of a module in the module cache, downloading it if needed.
module_dir() {
  local json
  json=$(cd "$work" && go mod download -json "$1")
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error")))' <<<"$json"
}

# Builds PKG from a throw-away wrapper module that requires MODULES (name@version).
go_build() {
  local out=$1 pkg=$2 version=$3; shift 3
  local dir started=$SECONDS
  dir=$work/build-$(basename "$out")
  rm -rf "$dir" && mkdir -p "$dir"
  (
    cd "$dir"
    go mod init gfs2-cluster/toolchain >/dev/null 2>&1
    for module in "$@"; do go mod edit -require="$module"; done
    # pkg/v3 replaces clipboard with a fork; a wrapper must repeat non-local replaces.
    go mod edit -replace=github.com/atotto/clipboard=github.com/tgummerer/clipboard@v0.0.0-20241001131231-d02d263e614e
    printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" >tools.go
    # Module downloads are noise unless something fails.
    go mod tidy >go.log 2>&1 || { cat go.log >&2; exit 1; }
    go build -trimpath -ldflags "-s -w -X $version_pkg=v$version" -o "$out.tmp" "$pkg"
  )
  mv "$out.tmp" "$out"
  rm -rf "$dir"
  log "built $(basename "$out") v$version in $((SECONDS - started)) s ($(du -h "$out" | cut -f1))"
}

pulumi_on_path_fits() {
  local found
  found=$(PATH=${PATH//$bin:/} command -v pulumi) || return 1
  [[ $("$found" version 2>/dev/null) == "v$PULUMI_VERSION" ]] && log "using $found (v$PULUMI_VERSION)"
}

build_cli() {
  if [[ -x $bin/pulumi ]] || pulumi_on_path_fits; then return; fi
  log "building the pulumi CLI v$PULUMI_VERSION (about 5 minutes on a cold cache)"
  go_build "$bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi "$PULUMI_VERSION" \
    "github.com/pulumi/pulumi/pkg/v3@v$PULUMI_VERSION" "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION"
}

build_language_host() {
  if [[ ! -x $bin/pulumi-language-python ]]; then
    log "building pulumi-language-python v$LANGHOST_VERSION"
    go_build "$bin/pulumi-language-python" github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python \
      "$LANGHOST_VERSION" "github.com/pulumi/pulumi/sdk/v3@v$LANGHOST_VERSION"
  fi
  # The scripts beside the host come from the SDK release that matches the pip package.
  local sdk
  sdk=$(module_dir "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION")
  for script in cmd/pulumi-language-python-exec dist/pulumi-resource-pulumi-python; do
    if ! cmp -s "$sdk/python/$script" "$bin/$(basename "$script")"; then
      install -m 0755 "$sdk/python/$script" "$bin/$(basename "$script")"
    fi
  done
}

# A provider plugin: already installed, or installed from an official release archive
# in GFS2_PLUGIN_DIR (air-gapped hosts), or built from its Go module when the proxy
# serves it. Records what happened in plugins.status; never fails setup on its own.
provide_plugin() {
  local name=$1 version=$2 module=$3
  local archive=${GFS2_PLUGIN_DIR:-/nonexistent}/pulumi-resource-$name-v$version-linux-amd64.tar.gz
  if pulumi plugin ls 2>/dev/null | grep -Eq "^$name +resource +$version "; then
    echo "$name $version installed"
  elif [[ -f $archive ]]; then
    pulumi plugin install resource "$name" "$version" --file "$archive" >/dev/null
    log "installed $name v$version from $archive"
    echo "$name $version installed"
  else
    local refusal
    if refusal=$(cd "$work" && go mod download -json "$module" 2>&1); then
      log "$module is served now: build it as README.md 'Provider plugins' describes"
      echo "$name $version missing: $module served but not built"
    else
      refusal=$(python3 -c 'import json,sys; print(json.load(sys.stdin).get("Error","").splitlines()[0])' <<<"$refusal" 2>/dev/null || echo "$refusal")
      log "plugin $name v$version unavailable: $refusal"
      echo "$name $version missing: $refusal"
    fi
  fi
}

main() {
  mkdir -p "$bin" "$work"
  [[ -f $work/go.mod ]] || (cd "$work" && go mod init gfs2-cluster/probe >/dev/null 2>&1)
  build_cli
  build_language_host
  {
    provide_plugin command "$COMMAND_VERSION" "$COMMAND_PROVIDER_MODULE"
    provide_plugin libvirt "$LIBVIRT_VERSION" "$LIBVIRT_PROVIDER_MODULE"
  } >"$GFS2_TOOLCHAIN_DIR/plugins.status"
  log "pulumi $(pulumi version) at $(command -v pulumi); python language host v$LANGHOST_VERSION"
}

main "$@"
