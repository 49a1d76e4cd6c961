"""What a killed run of a stack left behind, cleared before the next one (tools/stack.sh).

RUN_FILE holds "RUN_ID PID" of the last run started by tools/stack.sh. When that PID is
gone, the processes still carrying GFS2_RUN_ID=RUN_ID in their environment (the language
host, the program, the provider plugins) are orphans of it: ended by PID. A lock of the
stack whose process on this host is gone is removed, in a file backend or in the team's
PostgreSQL (through psql, tools/backend.py). Each action prints one line; a run still
alive, or one of another machine, is left alone (the engine's own lock refuses the new one).

A file backend writes each blob's metadata to a ".attrs" file beside it, truncating it
first; a run killed in between leaves it empty, and the engine then fails to open the
stack ("failed to load checkpoint: EOF"). Such a file of the stack is removed (the engine
reads a missing one as default metadata and writes it again).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from base64 import b64decode
from pathlib import Path
from urllib.parse import urlsplit

# tools/ for its neighbour backend.py; the project root for the project's own name.
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
import backend  # noqa: E402
from spec.vocabulary import PROJECT  # noqa: E402


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is gone for our purpose.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def processes_with(env_entry: str) -> list[int]:
    """PIDs of the processes whose environment holds ENV_ENTRY ("NAME=value")."""
    marker = env_entry.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return sorted(found)


def processes_of_run(run_id: str) -> list[int]:
    return processes_with(f"GFS2_RUN_ID={run_id}")


def end_orphans(run_file: Path, stack: str) -> None:
    if not run_file.exists():
        return
    run_id, pid = run_file.read_text().split()
    if alive(int(pid)):
        return
    orphans = [p for p in processes_of_run(run_id) if p != os.getpid()]
    for p in orphans:
        os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in orphans):
        time.sleep(0.2)
    for p in orphans:
        if alive(p):
            os.kill(p, signal.SIGKILL)
    if orphans:
        print(f"stack {stack}: ended {len(orphans)} process(es) left by the killed run {run_id} "
              f"(pids {' '.join(map(str, orphans))})")
    run_file.unlink()


def _stale(content: dict) -> bool:
    return content.get("hostname") == socket.gethostname() and not alive(int(content.get("pid", 0)))


def _removed(stack: str, content: dict) -> None:
    print(f"stack {stack}: removed a stale lock of pulumi process {content.get('pid')} "
          f"(started {content.get('timestamp')}), which is gone")


def _file_locks_dir(url: str, stack: str) -> Path:
    """The file backend's locks of a stack: .pulumi/locks/ORG/PROJECT/STACK/ID.json."""
    return Path(urlsplit(url).path) / ".pulumi" / "locks" / "organization" / PROJECT / stack


def clear_stale_locks(stack: str) -> None:
    url = os.environ.get("PULUMI_BACKEND_URL", "")
    if url.startswith(backend.POSTGRES):
        clear_stale_database_locks(url, stack)
    if not url.startswith("file://"):
        return
    locks = _file_locks_dir(url, stack)
    for lock in sorted(locks.glob("*.json")):
        try:
            content = json.loads(lock.read_text())
        except (OSError, ValueError):
            continue
        if _stale(content):
            lock.unlink()
            _removed(stack, content)


def repair_metadata_files(stack: str) -> None:
    url = os.environ.get("PULUMI_BACKEND_URL", "")
    if not url.startswith("file://"):
        return
    stacks = Path(urlsplit(url).path) / ".pulumi" / "stacks" / PROJECT
    candidates = [*stacks.glob(f"{stack}.json*.attrs"), *_file_locks_dir(url, stack).glob("*.attrs")]
    for attrs in sorted(candidates):
        if not attrs.is_file():
            continue
        try:
            json.loads(attrs.read_text())
        except (UnicodeDecodeError, ValueError):
            attrs.unlink()
            print(f"stack {stack}: removed {attrs}, an unreadable metadata file a killed run left "
                  "(the engine writes it again)")


def clear_stale_database_locks(url: str, stack: str) -> None:
    """The same lock in the PostgreSQL backend: a row keyed DB/.pulumi/locks/.../ID.json
    whose JSON holds the lock file's bytes in base64."""
    _, _, prefix = backend.conninfo(url)
    locks = f"{prefix}.pulumi/locks/organization/{PROJECT}/{stack}/"
    try:
        rows = backend.psql(url, "SELECT key, data->>'data' FROM :\"table\" WHERE starts_with(key, :'locks');\n",
                            {"locks": locks})
    except RuntimeError as e:
        # No table yet (a new database) or no connection: the engine says which, next.
        print(f"stack {stack}: could not look for stale locks: {e}", file=sys.stderr)
        return
    for key, data in rows:
        try:
            content = json.loads(b64decode(data))
        except ValueError:
            continue
        if _stale(content):
            backend.psql(url, "DELETE FROM :\"table\" WHERE key = :'key';\n", {"key": key})
            _removed(stack, content)


def main(run_file: str, stack: str) -> None:
    end_orphans(Path(run_file), stack)
    repair_metadata_files(stack)
    clear_stale_locks(stack)


if __name__ == "__main__":
    main(*sys.argv[1:])
