"""Shared pieces of the team tests: a throw-away PostgreSQL server (tools/pg_throwaway.py)
and a copy of the stand-in program (tests/team/program: same project name and config
namespace as gfs2-cluster, but its resources are files in a temporary folder), run by the
real Pulumi CLI against that server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from tools import backend
from tools.pg_throwaway import Server

PROGRAM = Path(__file__).resolve().parent / "program"
PASSPHRASE = "team-test-passphrase"


@pytest.fixture(scope="module")
def pg():
    """A PostgreSQL server of its own for the module, on loopback; stopped (by PID) and
    removed afterwards. Its folder is under /tmp: the server runs as the postgres user,
    which cannot enter pytest's tmp_path."""
    server = Server(Path(tempfile.mkdtemp(prefix="gfs2-pg-", dir="/tmp")))
    server.start()
    print(f"\nPostgreSQL {server.url()} (pid {server.pid}, data in {server.data})")
    yield server
    server.remove()
    assert not server.data.exists()


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Pulumi, project or PostgreSQL setting of the
    caller's shell, plus EXTRA."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "PG", "GFS2_RUN_ID"))}
    env.update(PULUMI_SKIP_UPDATE_CHECK="true", PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
               PULUMI_HOME=os.environ["PULUMI_HOME"])
    env.update(extra)
    return env


def sql(server: Server, query: str, **variables: str) -> list[list[str]]:
    """A query on the state database, as the pulumi role (psql variables :'name')."""
    env = server.env()
    return backend.psql(env["PULUMI_BACKEND_URL"], query + "\n", variables, env={**os.environ, **env})


class StandIn:
    """A copy of the stand-in program with one stack file, its state in SERVER."""

    def __init__(self, base: Path, server: Server, stack: str, files: dict[str, str], **config):
        self.dir = base / "project"
        self.out = base / "out"
        self.stack = stack
        self.server = server
        shutil.copytree(PROGRAM, self.dir)
        (self.dir / ".venv").symlink_to(ROOT / ".venv")
        (self.dir / "stacks").mkdir()
        self.config_file = self.dir / "stacks" / f"Pulumi.{stack}.yaml"
        settings = {"gfs2-cluster:outDir": str(self.out), "gfs2-cluster:files": files}
        settings.update({f"gfs2-cluster:{k}": v for k, v in config.items()})
        self.config_file.write_text(yaml.safe_dump({"config": settings}, sort_keys=False))
        self.env = clean_env(**server.env(), PULUMI_CONFIG_PASSPHRASE=PASSPHRASE)

    def command(self, *args: str) -> list[str]:
        return ["pulumi", *args, "--stack", self.stack, "--non-interactive"]

    def pulumi(self, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(self.command(*args), cwd=self.dir, env={**self.env, **(env or {})},
                                capture_output=True, text=True, timeout=300)
        print(f"\n$ pulumi {' '.join(args)} --stack {self.stack}  (exit {result.returncode})\n"
              f"{result.stdout}{result.stderr}", end="")
        if check and result.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed")
        return result

    def start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), cwd=self.dir, env={**self.env, **(env or {})},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def init(self) -> None:
        result = subprocess.run(["pulumi", "stack", "init", self.stack, "--non-interactive"], cwd=self.dir,
                                env=self.env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr

    def deployment(self) -> dict:
        return json.loads(self.pulumi("stack", "export").stdout)["deployment"]

    def resources(self) -> list[str]:
        return sorted(r["urn"].rsplit("::", 1)[1] for r in self.deployment().get("resources", []))

    def rows(self, kind: str) -> list[str]:
        """Keys of this stack's rows in the state database (stacks, history, backups, locks):
        DATABASE/.pulumi/KIND/PROJECT/STACK..., locks under organization/ too."""
        where = f"locks/organization/gfs2-cluster/{self.stack}/" if kind == "locks" else f"{kind}/gfs2-cluster/{self.stack}"
        return [r[0] for r in sql(self.server, "SELECT key FROM pulumi_state WHERE starts_with(key, :'prefix') ORDER BY key;",
                                  prefix=f"pulumi/.pulumi/{where}")]
