"""Where the stacks' state is, and whether the settings for it are safe to use.

    python3 tools/backend.py check    # one line naming the backend, or what is wrong (exit 2)

The default is the local file backend in .state/backend (tools/env.sh). A team points every
stack at one PostgreSQL database instead (README: Working as a team):

    PULUMI_BACKEND_URL=postgres://USER@HOST:PORT/DATABASE?sslmode=verify-full&table=pulumi_state
    PGPASSWORD=...                  # or PGPASSFILE: the CI secret store's, never in the URL
    PULUMI_CONFIG_PASSPHRASE=...    # the team's passphrase, from the same store

The engine prints the backend URL in its errors (a wrong password, a refused lock), so a
password inside it would reach every job log: such a URL is refused here, without printing
it. Its stack locks live in the database too: tools/stale_run.py clears one left by a
killed run of this machine (psql, with the same settings).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

POSTGRES = "postgres://"
DEFAULT_TABLE = "pulumi_state"


def redacted(url: str) -> str:
    """The URL with any password replaced, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:****@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def problems(env: dict[str, str]) -> list[str]:
    url = env.get("PULUMI_BACKEND_URL", "")
    if not url.startswith(POSTGRES):
        return []
    found = []
    if urlsplit(url).password is not None:
        found.append("PULUMI_BACKEND_URL holds a password, which the engine would print in its errors: "
                     "take it out of the URL and give it as PGPASSWORD (or a PGPASSFILE) from the CI secret store")
    query = dict(parse_qsl(urlsplit(url).query))
    if not (env.get("PGPASSWORD") or env.get("PGPASSFILE") or query.get("passfile")
            or (Path(env.get("HOME", "/nonexistent")) / ".pgpass").is_file()):
        found.append("no password for the state database: set PGPASSWORD (or PGPASSFILE) from the CI secret store")
    if not (env.get("PULUMI_CONFIG_PASSPHRASE") or env.get("PULUMI_CONFIG_PASSPHRASE_FILE")):
        found.append("stacks in a shared backend need the team's passphrase: set PULUMI_CONFIG_PASSPHRASE "
                     "from the CI secret store")
    return found


def describe(env: dict[str, str]) -> str:
    url = env.get("PULUMI_BACKEND_URL", "")
    if url.startswith(POSTGRES):
        table = dict(parse_qsl(urlsplit(url).query)).get("table", DEFAULT_TABLE)
        source = "PGPASSWORD" if env.get("PGPASSWORD") else "PGPASSFILE"
        return f"state: PostgreSQL {redacted(url)} (table {table}; password from {source})"
    if url.startswith("file://"):
        return f"state: files in {url[len('file://'):]}"
    return f"state: {redacted(url) or 'the default of pulumi login'}"


# --- the state database through psql (postgresql-client) ---------------------------------


def conninfo(url: str) -> tuple[str, str, str]:
    """(libpq URI, table, key prefix) of a postgres:// backend URL. The engine keeps every
    object under the URL's path (the database name) as a folder: DB/.pulumi/..."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "table"]
    table = dict(parse_qsl(parts.query)).get("table", DEFAULT_TABLE)
    prefix = parts.path.strip("/")
    return urlunsplit(parts._replace(query=urlencode(query))), table, (prefix + "/" if prefix else "")


def psql(url: str, script: str, variables: dict[str, str], env: dict[str, str] | None = None) -> list[list[str]]:
    """Run SCRIPT (psql variables :'name' and :"name" from VARIABLES) on the state database;
    its rows, tab-separated. Nothing but the connection settings' own variables (PGPASSWORD)
    carries the password."""
    uri, table, _ = conninfo(url)
    args = ["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-v", f"table={table}"]
    for name, value in variables.items():
        args += ["-v", f"{name}={value}"]
    result = subprocess.run([*args, "-d", uri], input=script, capture_output=True, text=True, timeout=60, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"psql on {redacted(url)}: {result.stderr.strip()}")
    return [line.split("\t") for line in result.stdout.splitlines() if line]


def main(argv: list[str]) -> int:
    if argv[1:] != ["check"]:
        sys.exit("usage: backend.py check")
    found = problems(dict(os.environ))
    if found:
        for problem in found:
            print(f"backend: {problem}", file=sys.stderr)
        return 2
    print(describe(dict(os.environ)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
