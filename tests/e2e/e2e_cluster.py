"""The e2e tests' handle on the local stack: the real engine (Pulumi's Automation API on
this project, after `tools/stack.sh prepare`, which does what `make up` does first), the
guests over SSH, and what of the stack is left on this machine.

One session: leftovers of an earlier run under the stack's names are removed, the stack
comes up once, the tests run against it in file order, and whatever is still up at the
end is destroyed, failures included.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pulumi.automation as auto
import pytest

from program_graph import read_stack_file
from render.host import forward_chain, lab_guard
from spec import build, load_spec
from spec.topology import Topology

ROOT = Path(__file__).resolve().parents[2]
STACK = "local"
RESULTS = ROOT / ".state" / "e2e"
URI = "qemu:///system"
COMMAND_TYPES = ("command:remote:Command", "command:local:Command")


def record(name: str, data: dict) -> None:
    """Measured figures of this session, one JSON file per test (.state/e2e/)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1))
    print(f"e2e {name}: {json.dumps(data)}")


def sh(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, **kw)


def virsh(*argv: str) -> subprocess.CompletedProcess:
    return sh("virsh", "-c", URI, *argv, check=False)


def topology(stack: str = STACK) -> Topology:
    return build(load_spec(read_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml")))


@dataclass
class Guest:
    name: str
    address: str
    domain: str
    key: Path

    def run(self, script: str, check: bool = True, timeout: float = 300, stdin: bytes | None = None) -> str:
        argv = ["ssh", "-i", str(self.key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", f"root@{self.address}",
                "bash -c " + shlex.quote("set -euo pipefail\n" + script)]
        p = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
        out = p.stdout.decode(errors="replace")
        if check and p.returncode != 0:
            raise AssertionError(f"{self.name}: exit {p.returncode}\n{out}{p.stderr.decode(errors='replace')}")
        return out


@dataclass
class Run:
    """One engine operation: what the engine did to each resource, and how long it took."""

    verb: str
    seconds: float
    ops: dict[str, str] = field(default_factory=dict)  # urn -> op of its step
    summary: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    log: Path | None = None

    def changed(self) -> dict[str, str]:
        return {u: op for u, op in self.ops.items() if op not in ("same", "read")}

    def commands_run(self) -> list[str]:
        return [u for u, op in self.changed().items() if any(f"::{t}::" in u for t in COMMAND_TYPES)]


class Engine:
    """The local stack through the real engine."""

    def __init__(self, stack: str = STACK):
        self.stack_name = stack
        prepared = sh(str(ROOT / "tools" / "stack.sh"), "prepare", stack, cwd=ROOT)
        self.config_file = prepared.stdout.strip().splitlines()[-1]
        self.stack = auto.select_stack(stack_name=stack, work_dir=str(ROOT))

    def _run(self, verb: str, **kw) -> Run:
        RESULTS.mkdir(parents=True, exist_ok=True)
        log_path = RESULTS / f"{verb}-{time.strftime('%H%M%S')}.log"
        run = Run(verb, 0.0, log=log_path)
        print(f"e2e: pulumi {verb} {self.stack_name}: start (log {log_path})", flush=True)

        def on_event(event):
            pre = event.resource_pre_event
            if pre is not None and pre.metadata is not None:
                run.ops[pre.metadata.urn] = pre.metadata.op.value

        t0 = time.monotonic()
        with open(log_path, "w") as log:
            def on_output(line):
                log.write(line + "\n")
                log.flush()
            try:
                result = getattr(self.stack, verb)(on_output=on_output, on_event=on_event, color="never",
                                                   config_file=self.config_file, **kw)
            finally:
                run.seconds = time.monotonic() - t0
        summary = getattr(result, "summary", None) or getattr(result, "change_summary", None)
        run.summary = dict(summary.resource_changes or {}) if hasattr(summary, "resource_changes") else dict(summary or {})
        run.outputs = {k: v.value for k, v in (getattr(result, "outputs", None) or {}).items()}
        print(f"e2e: pulumi {verb} {self.stack_name}: done in {run.seconds:.0f} s, {run.summary}", flush=True)
        return run

    def up(self) -> Run:
        return self._run("up")

    def preview(self, **kw) -> Run:
        return self._run("preview", **kw)

    def destroy(self) -> Run:
        return self._run("destroy")

    def resources(self) -> list[dict]:
        return self.stack.export_stack().deployment.get("resources", [])


@dataclass
class Cluster:
    engine: Engine
    members: list[Guest]
    server: Guest
    mount_point: str
    up_run: Run

    def member(self, name: str) -> Guest:
        return next(m for m in self.members if m.name == name)


def cluster_of(engine: Engine, up_run: Run) -> Cluster:
    topo = topology(engine.stack_name)
    key = ROOT / topo.spec.ssh.private_key_file
    found = {g.name: Guest(g.name, str(g.address), g.domain, key) for g in topo.guests}
    members = [found[m.name] for m in topo.members]
    server = found[topo.spec.storage.servers[0].name]
    return Cluster(engine, members, server, topo.filesystems[0].mount_point, up_run)


def leftovers(topo: Topology) -> list[str]:
    """What of the stack is on this machine, each checked with the real tool."""
    names = topo.names
    found = []
    domains = set(virsh("list", "--all", "--name").stdout.split())
    found += [f"domain {g.domain}" for g in topo.guests if g.domain in domains]
    if names.network in virsh("net-list", "--all", "--name").stdout.split():
        found.append(f"network {names.network}")
    if names.pool in virsh("pool-list", "--all", "--name").stdout.split():
        found.append(f"pool {names.pool}")
    pool_dir = Path("/var/lib/libvirt/gfs2-cluster") / names.stack_id
    if pool_dir.exists():
        found += [f"volume {p}" for p in sorted(pool_dir.iterdir())] or [f"pool dir {pool_dir}"]
    if sh("ip", "link", "show", topo.bridge, check=False).returncode == 0:
        found.append(f"bridge {topo.bridge}")
    chain = forward_chain(topo)
    rules = sh("iptables", "-S", check=False).stdout
    found += [f"iptables: {line}" for line in rules.splitlines()
              if topo.bridge in line or re.search(rf"\b{re.escape(chain)}(-in)?\b", line)
              or f"--dport {names.fence_port}" in line]
    ps = sh("ps", "-eo", "pid=,args=").stdout
    found += [f"process {line.strip()}" for line in ps.splitlines() if names.host_dir + "/" in line]
    if Path(names.host_dir).exists():
        found.append(f"dir {names.host_dir}")
    rules = sh("ip", "-4", "rule", "show", check=False).stdout
    found += [f"rule {line.strip()}" for line in rules.splitlines() if f"to {topo.spec.network.cidr} " in line]
    return sorted(set(found))


def purge(topo: Topology) -> list[str]:
    """Removes what an earlier run left under this stack's names (its state may be gone:
    CI starts from a new clone). Only this stack's own objects; processes by their PID."""
    names = topo.names
    before = leftovers(topo)
    for g in topo.guests:
        virsh("destroy", g.domain)
        virsh("undefine", g.domain)
    pidfile = Path(names.host_dir) / "fence_virtd.pid"
    pid = pidfile.read_text().strip() if pidfile.exists() else ""
    cmdline = Path(f"/proc/{pid}/cmdline") if pid.isdigit() else None
    # Only the fence_virtd this stack started: its command line names the stack's folder.
    if cmdline is not None and cmdline.exists() and names.host_dir in cmdline.read_text(errors="replace"):
        os.kill(int(pid), 15)
    virsh("pool-destroy", names.pool)
    virsh("pool-undefine", names.pool)
    sh("rm", "-rf", str(Path("/var/lib/libvirt/gfs2-cluster") / names.stack_id), names.host_dir)
    virsh("net-destroy", names.network)
    virsh("net-undefine", names.network)
    sh("ip", "link", "del", topo.bridge, check=False)
    chain = forward_chain(topo)
    for table_chain, parent in ((chain, "FORWARD"), (f"{chain}-in", "INPUT")):
        while sh("iptables", "-D", parent, "-j", table_chain, check=False).returncode == 0:
            pass
        sh("iptables", "-F", table_chain, check=False)
        sh("iptables", "-X", table_chain, check=False)
    for rule in sh("iptables", "-S", check=False).stdout.splitlines():
        if rule.startswith("-A ") and f"--dport {names.fence_port}" in rule:
            sh("iptables", *shlex.split(rule.replace("-A ", "-D ", 1)), check=False)
    # The guard goes last, as in a destroy: nothing of the lab is left to route anyway.
    sh("bash", "-c", lab_guard(topo).delete, check=False)
    return before


@pytest.fixture(scope="session")
def cluster():
    if os.geteuid() != 0:
        pytest.fail("e2e needs root (libvirt qemu:///system, iptables)")
    topo = topology()
    engine = Engine()
    if engine.resources():
        # State of an earlier session of this clone: destroy through the engine while
        # its guests may still answer, else drop the state (purge removes the rest).
        try:
            engine.destroy()
        except auto.CommandError as e:
            print(f"e2e: destroy of the earlier state failed, removing that state: {str(e)[-500:]}")
            # stack rm deletes the tracked stack file unless told to keep it.
            engine.stack.workspace.remove_stack(STACK, force=True, preserve_config=True)
            engine = Engine()
    found = purge(topo)
    if found:
        print(f"e2e: removed leftovers of an earlier run: {found}")
    assert leftovers(topo) == [], leftovers(topo)
    run = engine.up()
    try:
        # The summary leaves out default providers; the steps include them.
        assert run.summary.get("create", 0) > 0 and set(run.ops.values()) == {"create"}, (run.summary, run.ops)
        yield cluster_of(engine, run)
    finally:
        if engine.resources():
            engine.destroy()
        purge(topo)
