# shellcheck shell=bash
# Engine settings owned by the project (sourced by the Makefile recipes and ./activate,
# from bash or zsh); keeps whatever the user already set.

GFS2_ROOT=${GFS2_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)}
# shellcheck source=tools/versions.env
. "$GFS2_ROOT/tools/versions.env"
export PULUMI_VERSION COMMAND_VERSION LIBVIRT_VERSION TF_LIBVIRT_VERSION

# Per-user cache, outside the clone: CI runs in a fresh clone every time.
GFS2_CACHE_DIR=${GFS2_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gfs2-cluster}
GFS2_TOOLCHAIN_DIR=$GFS2_CACHE_DIR/toolchain/pulumi-v$PULUMI_VERSION
GFS2_STATE_DIR=${GFS2_STATE_DIR:-$GFS2_ROOT/.state}
export GFS2_ROOT GFS2_CACHE_DIR GFS2_TOOLCHAIN_DIR GFS2_STATE_DIR

# Installed plugins live in the cache too, so that a new clone finds them.
export PULUMI_HOME=${PULUMI_HOME:-$GFS2_CACHE_DIR/pulumi-home}
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$GFS2_STATE_DIR/backend}
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  export PULUMI_CONFIG_PASSPHRASE_FILE=$GFS2_STATE_DIR/passphrase
fi
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true

# The venv comes first: the language host runs the first python3 on PATH.
case ":$PATH:" in
  *":$GFS2_TOOLCHAIN_DIR/bin:"*) ;;
  *) PATH=$GFS2_ROOT/.venv/bin:$GFS2_TOOLCHAIN_DIR/bin:$PATH ;;
esac
export PATH
export VIRTUAL_ENV=$GFS2_ROOT/.venv
