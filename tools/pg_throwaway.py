"""A throw-away PostgreSQL server on loopback, for trying and testing the team backend.

    python3 tools/pg_throwaway.py start DIR    # initdb in DIR (once), start, print the env
    python3 tools/pg_throwaway.py env DIR      # the variables that point Pulumi at it
    python3 tools/pg_throwaway.py restart DIR
    python3 tools/pg_throwaway.py stop DIR     # stop (by the server's PID); DIR stays
    python3 tools/pg_throwaway.py remove DIR   # stop and delete DIR

The server is the machine's own PostgreSQL binaries (Debian's postgresql package) run on a
cluster made with initdb in DIR: it listens on 127.0.0.1 only, on a free port chosen at the
first start and kept after, its socket in DIR, password authentication (scram-sha-256) for
everyone. It has one login role `pulumi` owning one database `pulumi`; the role's password
is in DIR/pulumi.password (0600) and reaches Pulumi as PGPASSWORD, never in the URL.
As root the server runs as the `postgres` system user (PostgreSQL refuses root), so DIR
and its parents must be reachable by that user: /tmp is, pytest's tmp_path is not.
It is stopped by the PID in its postmaster.pid (SIGINT: fast shutdown, which ends every
backend), waiting until that PID is gone: nothing is found or killed by name.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROLE = "pulumi"
DATABASE = "pulumi"
TABLE = "pulumi_state"
ADMIN = "gfs2admin"
RUN_AS = "postgres"


def bindir() -> Path:
    """The newest PostgreSQL server binaries installed (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        sys.exit("pg_throwaway: no PostgreSQL server binaries in /usr/lib/postgresql/*/bin: run make setup")
    return found[-1].parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has ended
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@dataclass
class Server:
    dir: Path

    # --- where things are ---------------------------------------------------------

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def settings_file(self) -> Path:
        return self.dir / "server.json"

    @property
    def port(self) -> int:
        return json.loads(self.settings_file.read_text())["port"]

    @property
    def password(self) -> str:
        return (self.dir / f"{ROLE}.password").read_text().strip()

    def url(self, table: str = TABLE) -> str:
        """The backend URL: no password in it (PGPASSWORD carries that)."""
        return f"postgres://{ROLE}@127.0.0.1:{self.port}/{DATABASE}?sslmode=disable&table={table}"

    def env(self, table: str = TABLE) -> dict[str, str]:
        return {"PULUMI_BACKEND_URL": self.url(table), "PGPASSWORD": self.password}

    @property
    def pid(self) -> int | None:
        """The postmaster's PID while it runs (first line of postmaster.pid)."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    # --- running its programs -------------------------------------------------------

    def _as_owner(self) -> list[str]:
        return ["runuser", "-u", RUN_AS, "--"] if os.geteuid() == 0 else []

    def _run(self, *cmd: str, env: dict | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([*self._as_owner(), *cmd], capture_output=True, text=True, env=env, timeout=120)
        if result.returncode != 0:
            sys.exit(f"pg_throwaway: {' '.join(cmd[:2])} failed:\n{result.stdout}{result.stderr}")
        return result

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            user = pwd.getpwnam(RUN_AS)
            os.chown(path, user.pw_uid, user.pw_gid)

    def _reachable(self) -> None:
        if os.geteuid() != 0:
            return
        for parent in [self.dir, *self.dir.parents]:
            if not os.stat(parent).st_mode & 0o001 and parent != self.dir:
                sys.exit(f"pg_throwaway: {parent} is not reachable by the {RUN_AS} user the server runs as; "
                         "use a folder under /tmp")

    # --- the life of the server -----------------------------------------------------

    def init(self) -> None:
        """initdb and the settings, once: a second start finds the cluster and its port."""
        if (self.data / "PG_VERSION").exists():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self._reachable()
        os.chmod(self.dir, 0o700)
        self._chown(self.dir)
        admin = self.dir / f"{ADMIN}.password"
        for path in (admin, self.dir / f"{ROLE}.password"):
            path.write_text(secrets.token_urlsafe(24) + "\n")
            os.chmod(path, 0o600)
            self._chown(path)
        self._run(str(bindir() / "initdb"), "-D", str(self.data), "-U", ADMIN, f"--pwfile={admin}",
                  "--auth=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-instructions")
        self.settings_file.write_text(json.dumps({"port": free_port()}) + "\n")

    def start(self) -> None:
        self.init()
        if self.pid:
            return
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.dir} "
                   "-c max_connections=40 -c shared_buffers=16MB -c logging_collector=off")
        self._run(str(bindir() / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")
        self._setup_role()

    def _setup_role(self) -> None:
        """The login role and its database, once; the password travels in a file on stdin."""
        marker = self.dir / "role.done"
        if marker.exists():
            return
        env = dict(os.environ, PGPASSWORD=(self.dir / f"{ADMIN}.password").read_text().strip())
        # psql's :'var' quotes the password as a literal, read from the environment.
        sql = (f"\\set pw `cat {self.dir}/{ROLE}.password`\n"
               f"CREATE ROLE {ROLE} LOGIN PASSWORD :'pw';\n"
               f"CREATE DATABASE {DATABASE} OWNER {ROLE};\n")
        result = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port), "-U", ADMIN,
             "-d", "postgres"],
            input=sql, capture_output=True, text=True, env=env, timeout=60,
        )
        if result.returncode != 0:
            sys.exit(f"pg_throwaway: creating the {ROLE} role failed:\n{result.stderr}")
        marker.write_text("")

    def stop(self, mode: str = "fast") -> None:
        """Stop by PID: SIGINT is a fast shutdown, SIGQUIT an immediate one (a crash,
        recovered from the WAL at the next start)."""
        pid = self.pid
        if pid is None:
            return
        os.kill(pid, signal.SIGQUIT if mode == "immediate" else signal.SIGINT)
        deadline = time.monotonic() + 60
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[1] not in ("start", "env", "restart", "stop", "remove"):
        sys.exit("usage: pg_throwaway.py start|env|restart|stop|remove DIR")
    server = Server(Path(argv[2]).resolve())
    verb = argv[1]
    if verb != "env":
        getattr(server, verb)()
    if verb in ("start", "restart", "env"):
        print(f"# a throw-away PostgreSQL on 127.0.0.1:{server.port} (pid {server.pid}), data in {server.data}")
        print(f"export PULUMI_BACKEND_URL='{server.url()}'")
        print(f"export PGPASSWORD=\"$(cat {server.dir}/{ROLE}.password)\"")
        print("# and the passphrase the stacks in it share: export PULUMI_CONFIG_PASSPHRASE=...")
    elif verb == "stop":
        print(f"# stopped the PostgreSQL in {server.data}")


if __name__ == "__main__":
    main(sys.argv)
