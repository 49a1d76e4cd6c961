"""Reaching the guests of a stack the graph runner built: by name, over SSH with the
stack's key, for the e2e tests and the benchmarks."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tools.program_graph import reveal


@dataclass
class Guest:
    name: str
    address: str
    key: Path

    def ssh_argv(self, timeout: int = 10) -> list[str]:
        return ["ssh", "-i", str(self.key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", f"ConnectTimeout={timeout}",
                f"root@{self.address}"]

    def run(self, script: str, check: bool = True, timeout: float = 300, stdin: bytes | None = None) -> str:
        p = subprocess.run([*self.ssh_argv(), "bash -c " + shlex.quote("set -euo pipefail\n" + script)],
                           input=stdin, capture_output=True, timeout=timeout)
        out = p.stdout.decode(errors="replace")
        if check and p.returncode != 0:
            raise AssertionError(f"{self.name}: exit {p.returncode}\n{out}{p.stderr.decode(errors='replace')}")
        return out


def guests(graph, key: Path) -> dict[str, Guest]:
    """Every guest of a captured graph by short name (m1, s1, ...): the hosts its
    "ready" steps connect to."""
    found = {}
    for node in graph.nodes.values():
        if node.type == "command:remote:Command" and node.name.endswith("-ready") and "-locking-" not in node.name:
            short = node.name[: -len("-ready")].rsplit("-", 1)[-1]
            found[short] = Guest(short, reveal(node.inputs["connection"])["host"], key)
    return found
