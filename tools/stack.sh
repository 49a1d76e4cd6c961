#!/usr/bin/env bash
# make up|preview|destroy STACK=name: the real engine on one stack of stacks/.
set -euo pipefail

# shellcheck source=tools/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

verb=$1
stack=$2
stack_file=$GFS2_ROOT/stacks/Pulumi.$stack.yaml
if [[ ! -f $stack_file ]]; then
  known=("$GFS2_ROOT"/stacks/Pulumi.*.yaml)
  known=("${known[@]##*/Pulumi.}")
  echo "no stack $stack; stacks: ${known[*]%.yaml}" >&2
  exit 2
fi
cd "$GFS2_ROOT"

# Key files the stack keeps in .state/secrets/<dir>/ are made on first use.
while read -r dir; do
  [[ -n $dir ]] && tools/local-secrets.sh "$GFS2_ROOT/$dir"
done < <(grep -oE '\.state/secrets/[A-Za-z0-9_.-]+' "$stack_file" | sort -u)

# The builtin image (the default) is built, or found in the cache, before an up.
if [[ $verb == up ]] && { grep -q 'source: builtin' "$stack_file" || ! grep -q 'gfs2-cluster:image:' "$stack_file"; }; then
  image/build.sh
fi

# Without both provider plugins the engine cannot plan a libvirt resource: say why.
if grep -q missing "$GFS2_TOOLCHAIN_DIR/plugins.status"; then
  echo "BLOCKED: provider plugins are not installed:" >&2
  sed 's/^/  /' "$GFS2_TOOLCHAIN_DIR/plugins.status" >&2
  echo "Put the official release archives (pulumi-resource-<name>-v<version>-linux-amd64.tar.gz)" >&2
  echo "in a folder and run: make setup GFS2_PLUGIN_DIR=/that/folder (README.md, Provider plugins)." >&2
  exit 3
fi

pulumi stack select --create "$stack" >/dev/null
case $verb in
  up) pulumi up --stack "$stack" --yes --non-interactive --skip-preview ;;
  preview) pulumi preview --stack "$stack" --non-interactive ;;
  destroy) pulumi destroy --stack "$stack" --yes --non-interactive --skip-preview ;;
  *) echo "unknown verb $verb" >&2; exit 2 ;;
esac
