"""What a killed run of a stack left behind, cleared before the next one (tools/stack.sh).

RUN_FILE holds "RUN_ID PID" of the last run started by tools/stack.sh. When that PID is
gone, the processes still carrying GFS2_RUN_ID=RUN_ID in their environment (the language
host, the program, the provider plugins) are orphans of it: ended by PID. A lock of the
stack in a file backend whose process on this host is gone is removed. Each action prints
one line; a run still alive is left alone (the engine's own lock refuses the new one).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

PROJECT = "gfs2-cluster"


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


def processes_of_run(run_id: str) -> list[int]:
    marker = f"GFS2_RUN_ID={run_id}".encode()
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


def clear_stale_locks(stack: str) -> None:
    url = os.environ.get("PULUMI_BACKEND_URL", "")
    if not url.startswith("file://"):
        return
    # The file backend's lock of a stack: .pulumi/locks/ORG/PROJECT/STACK/ID.json.
    locks = Path(urlsplit(url).path) / ".pulumi" / "locks" / "organization" / PROJECT / stack
    for lock in sorted(locks.glob("*.json")):
        try:
            content = json.loads(lock.read_text())
        except (OSError, ValueError):
            continue
        if content.get("hostname") != socket.gethostname() or alive(int(content.get("pid", 0))):
            continue
        lock.unlink()
        print(f"stack {stack}: removed a stale lock of pulumi process {content.get('pid')} "
              f"(started {content.get('timestamp')}), which is gone")


def main(run_file: str, stack: str) -> None:
    end_orphans(Path(run_file), stack)
    clear_stale_locks(stack)


if __name__ == "__main__":
    main(*sys.argv[1:])
