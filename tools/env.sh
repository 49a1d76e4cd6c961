# shellcheck shell=bash
# Engine settings owned by the project (sourced by the Makefile recipes and ./activate,
# from bash or zsh); keeps whatever the user already set.

GFS2_ROOT=${GFS2_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)}
# shellcheck source=tools/versions.env
. "$GFS2_ROOT/tools/versions.env"
export PULUMI_VERSION COMMAND_VERSION LIBVIRT_VERSION TF_LIBVIRT_VERSION GITLAB_CI_LOCAL_VERSION

# Per-user cache, outside the clone: CI runs in a fresh clone every time.
GFS2_CACHE_DIR=${GFS2_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gfs2-cluster}
GFS2_TOOLCHAIN_DIR=$GFS2_CACHE_DIR/toolchain/pulumi-v$PULUMI_VERSION
GFS2_STATE_DIR=${GFS2_STATE_DIR:-$GFS2_ROOT/.state}
export GFS2_ROOT GFS2_CACHE_DIR GFS2_TOOLCHAIN_DIR GFS2_STATE_DIR
# gitlab-ci-local, installed by make setup into the cache (not globally).
export GFS2_GITLAB_CI_LOCAL=$GFS2_CACHE_DIR/tools/gitlab-ci-local-$GITLAB_CI_LOCAL_VERSION/node_modules/.bin/gitlab-ci-local

# Installed plugins live in the cache too, so that a new clone finds them.
export PULUMI_HOME=${PULUMI_HOME:-$GFS2_CACHE_DIR/pulumi-home}
# State: the file backend in .state/ unless PULUMI_BACKEND_URL points elsewhere, e.g. at
# the team's PostgreSQL (README: Working as a team; tools/backend.py checks it).
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$GFS2_STATE_DIR/backend}
# This clone's own passphrase serves only its own file backend: stacks in a shared backend
# take the team's, PULUMI_CONFIG_PASSPHRASE from the CI secret store.
case $PULUMI_BACKEND_URL in
  "file://$GFS2_STATE_DIR/backend")
    if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
      export PULUMI_CONFIG_PASSPHRASE_FILE=$GFS2_STATE_DIR/passphrase
    fi
    ;;
esac
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true

# The venv comes first: the language host runs the first python3 on PATH.
case ":$PATH:" in
  *":$GFS2_TOOLCHAIN_DIR/bin:"*) ;;
  *) PATH=$GFS2_ROOT/.venv/bin:$GFS2_TOOLCHAIN_DIR/bin:$PATH ;;
esac
export PATH
export VIRTUAL_ENV=$GFS2_ROOT/.venv
