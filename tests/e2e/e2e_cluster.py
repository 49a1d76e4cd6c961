"""Session fixture and helpers of the e2e tests. Real guests on this machine's libvirt, built by tools/graph_runner.py (which stands in
for the provider plugins that cannot be built here: this is not `pulumi up`).

One session: the local stack comes up once (parallel), the tests run against it in file
order, and whatever is still up at the end is destroyed, failures included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STACK = "local"
RESULTS = ROOT / ".state" / "e2e"
RUNNER = [sys.executable, str(ROOT / "tools" / "graph_runner.py")]
PARALLEL = int(os.environ.get("GFS2_E2E_PARALLEL", "8"))
# GFS2_E2E_REUSE=1: run against the cluster the graph runner already built (complete
# state), and leave it up afterwards; for re-running a test while working on it.
REUSE = os.environ.get("GFS2_E2E_REUSE") == "1"

sys.path.insert(0, str(ROOT))
from tools import graph_runner  # noqa: E402
from tools.guests import Guest, guests  # noqa: E402,F401 (Guest: the tests' handle on a guest)


def runner(verb: str, *args: str, timing: Path | None = None, timeout: float = 3600) -> subprocess.CompletedProcess:
    argv = [*RUNNER, verb, "--stack", STACK, "--parallel", str(PARALLEL), *args]
    if timing is not None:
        argv += ["--timing", str(timing)]
    p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    log = RESULTS / f"{verb}-{int(time.time())}.log"
    log.write_text(p.stdout + p.stderr)
    return p


def record(name: str, data: dict) -> None:
    """Measured figures of this session, one JSON file per test (.state/e2e/)."""
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1))


@dataclass
class Cluster:
    members: list[Guest]
    server: Guest
    mount_point: str
    domains: dict[str, str]
    up_record: dict

    def member(self, name: str) -> Guest:
        return next(m for m in self.members if m.name == name)


def cluster_from_graph() -> Cluster:
    graph = graph_runner.capture(STACK)
    config = graph_runner.stack_config(STACK)
    found = guests(graph, ROOT / config["ssh"]["privateKeyFile"])
    domains = {
        node.name[: -len("-domain")].rsplit("-", 1)[-1]: node.inputs["name"]
        for node in graph.nodes.values()
        if node.type == graph_runner.DOMAIN
    }
    members = [found[n] for n in sorted(found) if n.startswith("m")]
    server = found[config["storage"]["servers"][0]["name"]]
    mount = config["storage"]["volumeGroups"][0]["logicalVolumes"][0]["filesystem"]["mountPoint"]
    return Cluster(members, server, mount, domains, {})


@pytest.fixture(scope="session")
def cluster():
    if os.geteuid() != 0:
        pytest.fail("e2e needs root (libvirt qemu:///system, iptables)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(ROOT / "tools" / "local-secrets.sh"), str(ROOT / ".state/secrets/local-dev")], check=True)
    subprocess.run([str(ROOT / "image" / "build.sh")], check=True)
    if REUSE:
        complete = len(graph_runner.State(STACK).resources) == len(graph_runner.capture(STACK).nodes)
        assert complete, "GFS2_E2E_REUSE=1 needs a cluster the graph runner built completely"
        yield cluster_from_graph()
        return
    # A leftover of an earlier session would make every create refuse: start clean.
    if graph_runner.State(STACK).resources:
        runner("destroy")
    timing = RESULTS / "up-parallel.json"
    p = runner("up", timing=timing)
    try:
        assert p.returncode == 0, f"graph runner up failed:\n{p.stdout[-6000:]}\n{p.stderr[-4000:]}"
        c = cluster_from_graph()
        c.up_record = json.loads(timing.read_text())
        yield c
    finally:
        if graph_runner.State(STACK).resources:
            runner("destroy")
