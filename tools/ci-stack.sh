#!/usr/bin/env bash
# One stack in the GitOps pipeline: ci-stack.sh preview|up FOLDER STACK.
# Secrets come from the CI secret store as variables, never from the repository:
#   PULUMI_BACKEND_URL                                 (the team's state database,
#                                                      postgres://USER@HOST:PORT/DB?table=T,
#                                                      no password in it)
#   PGPASSWORD                                         (that database user's password)
#   PULUMI_CONFIG_PASSPHRASE                           (all stacks)
#   GFS2_PLUGIN_DIR                                    (provider plugin archives on the runner)
#   <STACK>_SSH_PRIVATE_KEY, <STACK>_FENCE_KEY, <STACK>_CLUSTER_AUTH_KEY
#                                                      (tenant stacks; STACK upper-cased, - as _;
#                                                      one per secret config key, in upper snake case)
set -euo pipefail

verb=$1
folder=$2
stack=$3
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${PULUMI_BACKEND_URL:?set PULUMI_BACKEND_URL in the CI secret store}"
: "${PULUMI_CONFIG_PASSPHRASE:?set PULUMI_CONFIG_PASSPHRASE in the CI secret store}"

make -C "$root" setup
# shellcheck source=tools/env.sh
. "$root/tools/env.sh"
# A password in the URL would be printed by the engine's errors; say where the state is.
python3 "$root/tools/backend.py" check
# The project's name and its secret config keys, as spec/vocabulary.py names them.
vocabulary() { PYTHONPATH=$root python3 -c "from spec.vocabulary import PROJECT, SECRET_KEYS; print($1)"; }
# stacks/ belongs to the project at the top, platform/stacks/ to platform/.
cd "$root/$(dirname "$folder")"
pulumi stack select --create "$stack"

policy=()
if [[ $folder == stacks ]]; then
  prefix=$(tr 'a-z-' 'A-Z_' <<<"$stack")
  project=$(vocabulary PROJECT)
  secret_keys=$(vocabulary '*SECRET_KEYS')
  for key in $secret_keys; do
    variable="${prefix}_$(sed -E 's/([A-Z])/_\1/g' <<<"$key" | tr '[:lower:]' '[:upper:]')"
    if [[ -n ${!variable:-} ]]; then
      # On stdin: the value never reaches a command line or the job log.
      printf '%s' "${!variable}" | pulumi config set --secret "$project:$key" --stack "$stack"
    fi
  done
  # The platform's registry of tenants is the policy pack's view of the other tenants.
  platform=$(pulumi config get "$project:platform" --stack "$stack" 2>/dev/null || true)
  if [[ -n $platform ]]; then
    platform=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("stack",""))' "$platform")
  fi
  config=$(mktemp)
  if [[ -n $platform ]]; then
    pulumi stack output registry --json --stack "$platform" |
      python3 -c 'import json,sys; json.dump({"tenants-do-not-share-vlans-or-fence-ports": {"registry": json.load(sys.stdin)}}, sys.stdout)' >"$config"
  else
    echo '{}' >"$config"
  fi
  policy=(--policy-pack "$root/policy" --policy-pack-config "$config")
fi

case $verb in
  preview) pulumi preview --stack "$stack" --non-interactive --diff "${policy[@]}" ;;
  up) pulumi up --stack "$stack" --non-interactive --yes "${policy[@]}" ;;
  *) echo "usage: ci-stack.sh preview|up FOLDER STACK" >&2; exit 2 ;;
esac
