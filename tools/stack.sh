#!/usr/bin/env bash
# make up|preview|destroy STACK=name: the real engine on one stack of stacks/.
#   tools/stack.sh VERB STACK [pulumi flags...]
#   tools/stack.sh prepare STACK   (everything before the engine; prints the config file)
#   GFS2_STACK_FILE=PATH tools/stack.sh VERB STACK   (a stack file outside stacks/, such as
#   a test's own tenant; it is always run from a copy in .state/ and holds no salt)
set -euo pipefail

# shellcheck source=tools/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

verb=$1
stack=$2
shift 2
# Where `pulumi stack init` writes the stack's config (the project's stackConfigDir).
init_file=$GFS2_ROOT/stacks/Pulumi.$stack.yaml
stack_file=$init_file
[[ -z ${GFS2_STACK_FILE:-} ]] || stack_file=$(realpath -- "$GFS2_STACK_FILE")
if [[ ! -f $stack_file ]]; then
  known=("$GFS2_ROOT"/stacks/Pulumi.*.yaml)
  known=("${known[@]##*/Pulumi.}")
  echo "no stack $stack; stacks: ${known[*]%.yaml}" >&2
  exit 2
fi
if [[ $stack_file != "$init_file" ]]; then
  if [[ -e $init_file ]]; then
    echo "stack $stack: $stack_file would share its name with $init_file; give it another name" >&2
    exit 2
  fi
  if grep -q '^encryptionsalt:' "$stack_file"; then
    echo "stack $stack: $stack_file holds an encryptionsalt; the engine keeps it in the copy in .state/" >&2
    exit 2
  fi
fi
cd "$GFS2_ROOT"
runs=$GFS2_STATE_DIR/runs
mkdir -p "$runs"

# Key files the stack keeps in .state/secrets/<dir>/ are made on first use.
while read -r dir; do
  [[ -n $dir ]] && tools/local-secrets.sh "$GFS2_ROOT/$dir"
done < <(grep -oE '\.state/secrets/[A-Za-z0-9_.-]+' "$stack_file" | sort -u)

# The builtin image (the default) is built, or found in the cache, before an up.
if [[ $verb == up || $verb == prepare ]] && { grep -q 'source: builtin' "$stack_file" || ! grep -q 'gfs2-cluster:image:' "$stack_file"; }; then
  image/build.sh
fi

# Where the state is (a team backend's URL must not hold its password), on stderr.
python3 tools/backend.py check >&2

# An earlier run of this stack that was killed: its lock and any process it left.
python3 tools/stale_run.py "$runs/$stack.run" "$stack"

# The engine writes this machine's encryption salt into the stack's config file. A stack
# whose tracked file has none (it keeps no secrets there, like `local`) is run from a copy
# in .state/ that keeps the salt, so the tracked file stays as the repository has it.
config_args=()
if [[ $stack_file != "$init_file" ]] || ! grep -q '^encryptionsalt:' "$stack_file"; then
  work_file=$GFS2_STATE_DIR/stacks/Pulumi.$stack.yaml
  mkdir -p "$(dirname "$work_file")"
  salt=$(grep '^encryptionsalt:' "$work_file" 2>/dev/null || true)
  { cat "$stack_file"; [[ -z $salt ]] || printf '%s\n' "$salt"; } >"$work_file.tmp"
  mv "$work_file.tmp" "$work_file"
  config_args=(--config-file "$work_file")
fi

if ! select_error=$(pulumi stack select "$stack" --non-interactive 2>&1 >/dev/null); then
  # Only a stack the backend does not have is made here: `stack init` over one it cannot
  # read would replace its state with an empty one.
  if [[ $select_error != *"no stack named '$stack' found"* ]]; then
    printf 'stack %s: the backend cannot open it, so no new stack is made over it:\n%s\n' \
      "$stack" "$select_error" >&2
    exit 2
  fi
  # stack init (which takes no --config-file) writes the salt into the tracked file:
  # the salt moves to the copy and the tracked file gets back its own bytes.
  # A stack file outside stacks/ has none there: init creates one, removed again here.
  rm -f "$runs/$stack.yaml.orig"
  [[ ! -f $init_file ]] || cp "$init_file" "$runs/$stack.yaml.orig"
  pulumi stack init "$stack" --non-interactive >/dev/null
  if ((${#config_args[@]})); then
    # A new stack has a new salt: it replaces whatever an earlier stack of this name left.
    sed -i '/^encryptionsalt:/d' "${config_args[1]}"
    grep '^encryptionsalt:' "$init_file" >>"${config_args[1]}" || true
    if [[ -f $runs/$stack.yaml.orig ]]; then cp "$runs/$stack.yaml.orig" "$init_file"; else rm -f "$init_file"; fi
  fi
  rm -f "$runs/$stack.yaml.orig"
fi

if [[ $verb == prepare ]]; then
  printf '%s\n' "${config_args[1]:-$stack_file}"
  exit 0
fi

# Processes of this run carry its id, so a later run can find what a killed one left.
GFS2_RUN_ID=$stack-$(date +%s)-$$
export GFS2_RUN_ID
printf '%s %s\n' "$GFS2_RUN_ID" "$$" >"$runs/$stack.run"
flags=(--stack "$stack" --non-interactive "${config_args[@]}")
case $verb in
  up) exec pulumi up "${flags[@]}" --yes --skip-preview "$@" ;;
  preview) exec pulumi preview "${flags[@]}" "$@" ;;
  destroy) exec pulumi destroy "${flags[@]}" --yes --skip-preview "$@" ;;
  *) echo "unknown verb $verb (up, preview, destroy, prepare)" >&2; exit 2 ;;
esac
