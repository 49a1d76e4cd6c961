"""A stack on this machine's libvirt through the real engine, for the suites that run
guests (tests/e2e, tests/isolation): the engine (Pulumi's Automation API on this project,
after `tools/stack.sh prepare`, which does what `make up` does first), the guests over
SSH, and what of a stack is left on this machine, found and removed by its names.

A stack of stacks/ is named by itself; another stack file (a test's own tenant) is given
with its path and run from a copy in .state/stacks/, so the tracked file stays as it is.
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
from typing import Optional

import pulumi.automation as auto

from program_graph import read_stack_file
from render.host import forward_chain, lab_guard
from render.scripts.cib import started_nodes
from spec import build, load_spec
from spec.topology import Topology

ROOT = Path(__file__).resolve().parents[1]
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


def read_topology(stack_file: Path) -> Topology:
    return build(load_spec(read_stack_file(stack_file)))


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


def sha256_on(guest: Guest, path: str) -> str:
    return guest.run(f"sha256sum {path} | cut -d' ' -f1").strip()


def crm_started_on(guest: Guest, clone: str) -> set[str]:
    """Nodes where every primitive of CLONE is Started (the rule cib.py waits on)."""
    out = guest.run("crm_mon --one-shot --inactive --output-as=xml", check=False, timeout=60)
    try:
        return started_nodes(out, clone)
    except Exception:  # noqa: BLE001 - no answer yet counts as nowhere
        return set()


@dataclass
class Run:
    """One engine operation: what the engine did to each resource, and how long it took."""

    verb: str
    seconds: float
    ops: dict[str, str] = field(default_factory=dict)  # urn -> op of its step
    summary: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    log: Path | None = None
    result: str = ""  # the engine's word on the update: succeeded, failed, ...

    def changed(self) -> dict[str, str]:
        return {u: op for u, op in self.ops.items() if op not in ("same", "read")}

    def commands_run(self) -> list[str]:
        return [u for u, op in self.changed().items() if any(f"::{t}::" in u for t in COMMAND_TYPES)]


class Engine:
    """One stack through the real engine: stacks/Pulumi.STACK.yaml, or the stack file
    given (run from its copy in .state/stacks/, as tools/stack.sh does with
    GFS2_STACK_FILE)."""

    def __init__(self, stack: str = "local", stack_file: Optional[Path] = None):
        self.stack_name = stack
        self.own_file = Path(stack_file) if stack_file else None
        self.stack_file = self.own_file or ROOT / "stacks" / f"Pulumi.{stack}.yaml"
        env = dict(os.environ, GFS2_STACK_FILE=str(self.own_file)) if self.own_file else None
        prepared = sh(str(ROOT / "tools" / "stack.sh"), "prepare", stack, cwd=ROOT, env=env)
        self.config_file = prepared.stdout.strip().splitlines()[-1]
        self.stack = auto.select_stack(stack_name=stack, work_dir=str(ROOT))

    def again(self) -> "Engine":
        """A new handle on this stack (after its state was removed)."""
        return Engine(self.stack_name, self.own_file)

    def topology(self) -> Topology:
        return read_topology(self.stack_file)

    def _run(self, verb: str, **kw) -> Run:
        RESULTS.mkdir(parents=True, exist_ok=True)
        # Named by stack too: two stacks' runs may start in the same second.
        log_path = RESULTS / f"{verb}-{self.stack_name}-{time.strftime('%H%M%S')}.log"
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
        run.result = str(getattr(summary, "result", "") or "")
        print(f"e2e: pulumi {verb} {self.stack_name}: done in {run.seconds:.0f} s, {run.summary}", flush=True)
        return run

    def up(self) -> Run:
        # Its summary with secrets runs `stack history --show-secrets`, which reads the
        # stack's config without --config-file and writes this machine's salt into it.
        return self._run("up", show_secrets=False)

    def preview(self, **kw) -> Run:
        return self._run("preview", **kw)

    def destroy(self) -> Run:
        return self._run("destroy", show_secrets=False)

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
    topo = engine.topology()
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
              or f"--dport {topo.fencing.port}" in line]
    ps = sh("ps", "-eo", "pid=,args=").stdout
    found += [f"process {line.strip()}" for line in ps.splitlines() if names.host_dir + "/" in line]
    if Path(names.host_dir).exists():
        found.append(f"dir {names.host_dir}")
    if Path(names.boot_hook("qemu")).exists():
        found.append(f"libvirt hook {names.boot_hook('qemu')}")
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
    sh("rm", "-rf", str(Path("/var/lib/libvirt/gfs2-cluster") / names.stack_id), names.host_dir, names.boot_hook("qemu"))
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
        if rule.startswith("-A ") and f"--dport {topo.fencing.port}" in rule:
            sh("iptables", *shlex.split(rule.replace("-A ", "-D ", 1)), check=False)
    # The guard goes last, as in a destroy: nothing of the lab is left to route anyway.
    sh("bash", "-c", lab_guard(topo).delete, check=False)
    return before


def clean_start(engine: Engine) -> Engine:
    """The stack with nothing of it on this machine: the state of an earlier session is
    destroyed through the engine while its guests may still answer, else dropped; then
    what is left under the stack's names is removed. Returns the engine to use."""
    topo = engine.topology()
    if engine.resources():
        try:
            engine.destroy()
        except auto.CommandError as e:
            print(f"e2e: destroy of the earlier state of {engine.stack_name} failed, removing that state: {str(e)[-500:]}")
            # stack rm deletes the tracked stack file unless told to keep it.
            engine.stack.workspace.remove_stack(engine.stack_name, force=True, preserve_config=True)
            engine = engine.again()
    found = purge(topo)
    if found:
        print(f"e2e: removed leftovers of an earlier run of {engine.stack_name}: {found}")
    assert leftovers(topo) == [], leftovers(topo)
    return engine
