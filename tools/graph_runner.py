#!/usr/bin/env python3
"""Graph runner: a test bench that executes the program's resource graph on this machine
without the Pulumi engine.

WHY IT EXISTS. The Pulumi CLI and the Python language host run here, but the two provider
plugins (pulumi-resource-command, pulumi-resource-libvirt) cannot be built: the Go module
proxy refuses their modules, so `pulumi up` stops at the provider boundary. This runner
stands in for those two plugins, and for nothing else, so that the rendered node scripts
can be proven on real guests in the program's own dependency order. It is NOT the engine:
no diff, no refresh, no import, no provider gRPC. `make up` never uses it; `make e2e` and
the measurements do. Anything it proves is labelled "graph runner", not "pulumi up".

What it does:
  capture(stack)  runs __main__.py under Pulumi mocks (tools/program_graph.py: the one
                  RecordingMonitor, shared with the wiring tests) with the stack's real
                  config (stacks/Pulumi.<stack>.yaml) and real key files; every registered
                  resource with its inputs (secrets unwrapped) and dependency URNs. Mock ids
                  are derived from the logical name, so an input such as base_volume_id or
                  network_id leads back to the resource that made it.
  up              creates, in dependency order with a worker pool, every resource not yet in
                  the runner's state (.state/graph-runner/<stack>.json), each the way its
                  provider would (see Executor); the state is written after every resource,
                  so a killed run resumes like an engine whose pending creates were dropped.
  rerun           runs the create of every command again (a second run must change nothing).
  destroy         runs every delete in reverse dependency order and checks that nothing of
                  the stack is left (domains, networks, pool, bridge, fence_virtd, chains).

  python tools/graph_runner.py up|rerun|destroy|capture [--stack local] [--parallel N]
                               [--timing FILE]

Providers as emulated here:
  command:remote:Command  ssh -i KEY root@HOST '<create as registered>' with the registered
                          stdin; dials are retried while the guest is unreachable, up to the
                          connection's dial_error_limit (10 by default, -1 unlimited), as
                          pulumi-command does; a non-zero exit fails with the output.
  command:local:Command   the registered interpreter with the create text and stdin.
  libvirt Pool (dir)      pool-define-as/build/start on the target path.
  libvirt Volume          from source: qemu-img convert into the pool; with base_volume_id:
                          a qcow2 overlay (qemu-img create -F FMT -b BASE); with size: a
                          sparse raw file; then pool-refresh.
  libvirt Network         mode none: an isolated network (no forward, no DHCP, no DNS) on
                          the registered bridge, with the CIDR's first address on the host.
  libvirt Domain          the XML terraform-provider-libvirt v0.8 generates (see
                          tests/render/fixtures/), then the registered xml.xslt through the
                          real `xsltproc --nonet`, then virsh define and start.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import hashlib
import ipaddress
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional
from xml.sax.saxutils import escape, quoteattr

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import program_graph  # noqa: E402
from tools.program_graph import reveal, stack_config  # noqa: E402

URI = "qemu:///system"
STATE_DIR = ROOT / ".state" / "graph-runner"

COMMAND_TYPES = ("command:remote:Command", "command:local:Command")
POOL, VOLUME, NETWORK, DOMAIN = (
    "libvirt:index/pool:Pool",
    "libvirt:index/volume:Volume",
    "libvirt:index/network:Network",
    "libvirt:index/domain:Domain",
)
EXECUTABLE = (*COMMAND_TYPES, POOL, VOLUME, NETWORK, DOMAIN)


# --- capture: the program under mocks (tools/program_graph.py, shared with the tests) ---


@dataclass
class Node:
    urn: str
    type: str
    name: str
    inputs: dict
    deps: set
    id: str = ""

    @property
    def short(self) -> str:
        return self.name


class Graph:
    """The executable resources and the dependencies between them (components expanded)."""

    def __init__(self, registered: dict):
        self.registered = registered
        children: dict[str, list[str]] = {}
        for r in registered.values():
            children.setdefault(r.parent, []).append(r.urn)

        def expand(urn: str, seen: set) -> set:
            r = registered.get(urn)
            if r is None or urn in seen:
                return set()
            seen.add(urn)
            if r.type in EXECUTABLE:
                return {urn}
            out = set()
            for c in children.get(urn, []):
                out |= expand(c, seen)
            return out

        self.nodes: dict[str, Node] = {}
        for r in registered.values():
            if r.type not in EXECUTABLE:
                continue
            deps = set()
            for d in r.dependencies:
                deps |= expand(d, set())
            deps.discard(r.urn)
            self.nodes[r.urn] = Node(r.urn, r.type, r.name, r.inputs, deps, r.id)
        self.by_name = {n.name: n for n in self.nodes.values()}
        # Inputs such as base_volume_id and network_id hold the mock id of another resource.
        self.by_id = {r.id: self.nodes[r.urn] for r in registered.values() if r.urn in self.nodes}
        components = {r.parent for r in registered.values()}
        unknown = {r.type for r in registered.values() if r.type not in EXECUTABLE and r.urn not in components
                   and not r.type.startswith("pulumi:providers:")}
        if unknown:
            raise SystemExit(f"graph runner: no emulation for resource types {sorted(unknown)}")

    def order(self) -> list[Node]:
        """A topological order (stable: registration order among ready nodes)."""
        done, out = set(), []
        pending = list(self.nodes.values())
        while pending:
            ready = [n for n in pending if n.deps <= done]
            if not ready:
                raise SystemExit("graph runner: dependency cycle")
            for n in ready:
                done.add(n.urn)
                out.append(n)
            pending = [n for n in pending if n.urn not in done]
        return out


def capture(stack: str, stack_file: Optional[Path] = None) -> Graph:
    """The stack's graph with its real config and real key files (the program reads them
    as it would under the engine), as an update: the builtin image must exist."""
    config = program_graph.read_stack_file(stack_file) if stack_file else stack_config(stack)
    return Graph(program_graph.capture(stack, config, {}, preview=False).by_urn)


# --- state -----------------------------------------------------------------------------


class State:
    """Which resources exist, with the inputs they were created with (stdin left out: the
    deletes read nothing on stdin). Written after every change, atomically, mode 0600 in
    .state/ (which already holds the stack's key files)."""

    def __init__(self, stack: str):
        self.path = STATE_DIR / f"{stack}.json"
        self.lock = threading.Lock()
        self.resources: dict[str, dict] = {}
        if self.path.exists():
            self.resources = json.loads(self.path.read_text())["resources"]

    def put(self, node: Node) -> None:
        with self.lock:
            inputs = {k: v for k, v in node.inputs.items() if k != "stdin"}
            self.resources[node.urn] = {
                "type": node.type, "name": node.name, "id": node.id, "inputs": inputs, "deps": sorted(node.deps)
            }
            self._write()

    def drop(self, urn: str) -> None:
        with self.lock:
            self.resources.pop(urn, None)
            self._write()

    def _write(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        os.chmod(STATE_DIR, 0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"resources": self.resources}, f, indent=1)
        os.replace(tmp, self.path)


# --- execution -------------------------------------------------------------------------


class Failed(Exception):
    pass


def sh(*args: str, check: bool = True, input: Optional[str] = None, timeout: Optional[float] = None):
    p = subprocess.run(args, input=input, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise Failed(f"{' '.join(shlex.quote(a) for a in args)} exited {p.returncode}:\n{p.stdout}{p.stderr}")
    return p


def virsh(*args: str, check: bool = True, input: Optional[str] = None):
    return sh("virsh", "-q", "-c", URI, *args, check=check, input=input)


DIAL_ERRORS = re.compile(
    r"Connection refused|No route to host|Connection timed out|timed out|Network is unreachable|"
    r"Connection reset|Connection closed by|kex_exchange_identification|banner exchange|"
    r"Permission denied|Host is down|Could not resolve"
)


class Executor:
    def __init__(self, graph: Graph, log: Callable[[str], None], workdir: Path):
        self.graph = graph
        self.log = log
        self.workdir = workdir
        self.keys: dict[str, Path] = {}
        self.key_lock = threading.Lock()
        self.outputs: dict[str, str] = {}

    # -- commands --

    def key_file(self, private_key: str) -> Path:
        digest = hashlib.sha256(private_key.encode()).hexdigest()[:16]
        with self.key_lock:
            if digest not in self.keys:
                path = self.workdir / f"key-{digest}"
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(private_key if private_key.endswith("\n") else private_key + "\n")
                self.keys[digest] = path
            return self.keys[digest]

    def ssh_argv(self, conn: dict, per_dial_timeout: int) -> list[str]:
        key = self.key_file(conn["privateKey"])
        common = ["-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                  "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", f"ConnectTimeout={per_dial_timeout}",
                  "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=8"]
        argv = ["ssh", *common, "-p", str(int(conn.get("port", 22)))]
        proxy = conn.get("proxy")
        if proxy:
            pkey = self.key_file(proxy.get("privateKey", conn["privateKey"]))
            jump = ["ssh", "-i", str(pkey), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                    "-o", "BatchMode=yes", "-W", "%h:%p", "-p", str(int(proxy.get("port", 22))),
                    f"{proxy.get('user', 'root')}@{proxy['host']}"]
            argv += ["-o", "ProxyCommand=" + " ".join(shlex.quote(a) for a in jump)]
        return argv + [f"{conn.get('user', 'root')}@{conn['host']}"]

    def remote(self, node: Node, text: str, stdin: Optional[str]) -> str:
        conn = reveal(node.inputs["connection"])
        limit = int(conn.get("dialErrorLimit", 10))
        per_dial = int(conn.get("perDialTimeout", 15))
        argv = self.ssh_argv(conn, per_dial)
        failures, delay = 0, 1.0
        while True:
            p = subprocess.run([*argv, "--", text], input=stdin or "", capture_output=True, text=True)
            dial_failed = p.returncode == 255 and not p.stdout and DIAL_ERRORS.search(p.stderr or "")
            if not dial_failed:
                break
            failures += 1
            if limit >= 0 and failures >= limit:
                raise Failed(f"{node.name}: could not dial {conn['host']} after {failures} tries: {p.stderr.strip()}")
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)
        if p.returncode != 0:
            raise Failed(f"{node.name}: exited {p.returncode}\n--- stdout\n{p.stdout}--- stderr\n{p.stderr}")
        return p.stdout + p.stderr

    def local(self, node: Node, text: str, stdin: Optional[str]) -> str:
        interpreter = node.inputs.get("interpreter") or ["/bin/sh", "-c"]
        p = subprocess.run([*interpreter, text], input=stdin or "", capture_output=True, text=True, cwd=ROOT)
        if p.returncode != 0:
            raise Failed(f"{node.name}: exited {p.returncode}\n--- stdout\n{p.stdout}--- stderr\n{p.stderr}")
        return p.stdout + p.stderr

    def command(self, node: Node, key: str) -> str:
        text = node.inputs.get(key)
        if not text:
            return ""
        stdin = reveal(node.inputs.get("stdin")) if key == "create" else None
        if node.type == "command:local:Command":
            return self.local(node, text, stdin)
        return self.remote(node, text, stdin)

    # -- libvirt --

    def ref(self, resource_id: str) -> Node:
        node = self.graph.by_id.get(resource_id)
        if node is None:
            raise Failed(f"no resource with id {resource_id!r} in the graph")
        return node

    def pool_of(self, volume: Node) -> Node:
        pool_name = volume.inputs["pool"]
        for n in self.graph.nodes.values():
            if n.type == POOL and n.inputs["name"] == pool_name:
                return n
        raise Failed(f"{volume.name}: no pool {pool_name}")

    def volume_path(self, volume: Node) -> Path:
        return Path(self.pool_of(volume).inputs["target"]["path"]) / volume.inputs["name"]

    def create_pool(self, node: Node) -> str:
        name, path = node.inputs["name"], node.inputs["target"]["path"]
        if virsh("pool-info", name, check=False).returncode == 0:
            raise Failed(f"storage pool {name} already exists (the provider would refuse too)")
        virsh("pool-define-as", name, "dir", "--target", path)
        virsh("pool-build", name)
        virsh("pool-start", name)
        return f"pool {name} at {path}"

    def delete_pool(self, node: Node) -> str:
        name, path = node.inputs["name"], node.inputs["target"]["path"]
        if virsh("pool-info", name, check=False).returncode == 0:
            virsh("pool-destroy", name, check=False)
            virsh("pool-undefine", name)
        if os.path.isdir(path):
            os.rmdir(path)  # fails when a volume is left: that is a leak to report
        return f"pool {name} removed"

    def create_volume(self, node: Node) -> str:
        inp = node.inputs
        path = self.volume_path(node)
        if path.exists():
            raise Failed(f"volume {path} already exists (the provider would refuse too)")
        fmt = inp.get("format", "qcow2")
        if inp.get("source"):
            sh("qemu-img", "convert", "-O", fmt, inp["source"], str(path))
            what = f"copied {inp['source']}"
        elif inp.get("baseVolumeId"):
            base = self.ref(inp["baseVolumeId"])
            base_fmt = base.inputs.get("format", "qcow2")
            sh("qemu-img", "create", "-q", "-f", "qcow2", "-F", base_fmt, "-b", str(self.volume_path(base)), str(path))
            what = f"overlay of {base.inputs['name']}"
        else:
            size = int(inp["size"])
            with open(path, "wb") as f:
                f.truncate(size)
            what = f"sparse {fmt} {size >> 30} GiB"
        virsh("pool-refresh", self.pool_of(node).inputs["name"])
        return f"volume {inp['name']}: {what}"

    def delete_volume(self, node: Node) -> str:
        path = self.volume_path(node)
        if path.exists():
            path.unlink()
        virsh("pool-refresh", self.pool_of(node).inputs["name"], check=False)
        return f"volume {node.inputs['name']} removed"

    def network_xml(self, node: Node) -> str:
        inp = node.inputs
        if inp.get("mode", "nat") != "none":
            raise Failed(f"{node.name}: only mode none is emulated")
        net = ipaddress.ip_network(inp["addresses"][0])
        host = next(net.hosts())
        return (
            f"<network><name>{escape(inp['name'])}</name>"
            f"<bridge name={quoteattr(inp['bridge'])} stp='on' delay='0'/>"
            f"<dns enable='no'/>"
            f"<ip address='{host}' prefix='{net.prefixlen}'/></network>"
        )

    def create_network(self, node: Node) -> str:
        name = node.inputs["name"]
        if virsh("net-info", name, check=False).returncode == 0:
            raise Failed(f"network {name} already exists (the provider would refuse too)")
        xml = self.workdir / f"{name}.net.xml"
        xml.write_text(self.network_xml(node))
        virsh("net-define", str(xml))
        virsh("net-start", name)
        if node.inputs.get("autostart"):
            virsh("net-autostart", name)
        return f"network {name} on {node.inputs['bridge']}"

    def delete_network(self, node: Node) -> str:
        name = node.inputs["name"]
        if virsh("net-info", name, check=False).returncode == 0:
            virsh("net-destroy", name, check=False)
            virsh("net-undefine", name)
        return f"network {name} removed"

    def domain_xml(self, node: Node) -> str:
        """What terraform-provider-libvirt v0.8 generates (tests/render/fixtures/)."""
        inp = node.inputs
        lines = [f'<domain type={quoteattr(inp.get("type", "kvm"))}>',
                 f"    <name>{escape(inp['name'])}</name>",
                 f'    <memory unit="MiB">{int(inp.get("memory", 512))}</memory>',
                 f"    <vcpu>{int(inp.get('vcpu', 1))}</vcpu>",
                 "    <os>",
                 f'        <type machine={quoteattr(inp.get("machine") or "pc")}>hvm</type>']
        if inp.get("kernel"):
            lines.append(f"        <kernel>{escape(inp['kernel'])}</kernel>")
        if inp.get("initrd"):
            lines.append(f"        <initrd>{escape(inp['initrd'])}</initrd>")
        if inp.get("cmdlines"):
            # setCmdlineArgs: key=value pairs sorted, "_" a bare flag, space-joined.
            args = []
            for entry in inp["cmdlines"]:
                for k, v in entry.items():
                    args.append(v if k == "_" else f"{k}={v}")
            lines.append(f"        <cmdline>{escape(' '.join(sorted(args)))}</cmdline>")
        lines += ["    </os>", "    <features>", "        <pae></pae>", "        <acpi></acpi>",
                  "        <apic></apic>", "    </features>", "    <cpu></cpu>", "    <devices>"]
        for i, disk in enumerate(inp.get("disks", [])):
            vol = self.ref(disk["volumeId"])
            pool = self.pool_of(vol).inputs["name"]
            lines += ['        <disk type="volume" device="disk">',
                      f'            <driver name="qemu" type={quoteattr(vol.inputs.get("format", "qcow2"))}></driver>',
                      f"            <source pool={quoteattr(pool)} volume={quoteattr(vol.inputs['name'])}></source>",
                      f'            <target dev="vd{chr(ord("a") + i)}" bus="virtio"></target>',
                      "        </disk>"]
        for nic in inp.get("networkInterfaces", []):
            if nic.get("networkId"):
                net = self.ref(nic["networkId"])
                kind, source = "network", f"network={quoteattr(net.inputs['name'])}"
            else:
                kind, source = "bridge", f"bridge={quoteattr(nic['bridge'])}"
            lines += [f'        <interface type="{kind}">',
                      f"            <mac address={quoteattr(nic['mac'])}></mac>",
                      f"            <source {source}></source>",
                      '            <model type="virtio"></model>',
                      "        </interface>"]
        for console in inp.get("consoles", []):
            lines += ["        <console>",
                      f"            <target type={quoteattr(console.get('targetType', 'serial'))} "
                      f"port={quoteattr(console.get('targetPort', '0'))}></target>",
                      "        </console>"]
        lines += ['        <channel type="unix">',
                  '            <target type="virtio" name="org.qemu.guest_agent.0"></target>',
                  "        </channel>",
                  '        <rng model="virtio">',
                  '            <backend model="random">/dev/urandom</backend>',
                  "        </rng>",
                  "    </devices>",
                  "</domain>"]
        return "\n".join(lines) + "\n"

    def create_domain(self, node: Node) -> str:
        name = node.inputs["name"]
        if virsh("dominfo", name, check=False).returncode == 0:
            raise Failed(f"domain {name} already exists (the provider would refuse too)")
        raw = self.workdir / f"{name}.xml"
        raw.write_text(self.domain_xml(node))
        final = raw
        xslt = (node.inputs.get("xml") or {}).get("xslt")
        if xslt:
            sheet = self.workdir / f"{name}.xsl"
            sheet.write_text(xslt)
            final = self.workdir / f"{name}.final.xml"
            final.write_text(sh("xsltproc", "--nonet", str(sheet), str(raw)).stdout)
        virsh("define", str(final))
        if node.inputs.get("autostart"):
            virsh("autostart", name)
        if node.inputs.get("running", True):
            virsh("start", name)
        return f"domain {name} defined and started"

    def delete_domain(self, node: Node) -> str:
        name = node.inputs["name"]
        if virsh("dominfo", name, check=False).returncode == 0:
            virsh("destroy", name, check=False)
            virsh("undefine", name)
        return f"domain {name} removed"

    # -- dispatch --

    def create(self, node: Node) -> str:
        if node.type in COMMAND_TYPES:
            out = self.command(node, "create")
            self.outputs[node.urn] = out
            return out
        return {POOL: self.create_pool, VOLUME: self.create_volume, NETWORK: self.create_network,
                DOMAIN: self.create_domain}[node.type](node)

    def delete(self, node: Node) -> str:
        if node.type in COMMAND_TYPES:
            return self.command(node, "delete")
        return {POOL: self.delete_pool, VOLUME: self.delete_volume, NETWORK: self.delete_network,
                DOMAIN: self.delete_domain}[node.type](node)


# --- scheduling ------------------------------------------------------------------------


@dataclass
class Timing:
    name: str
    type: str
    start: float
    end: float
    ok: bool
    skipped: bool = False

    @property
    def seconds(self) -> float:
        return self.end - self.start


class Run:
    def __init__(self, verb: str, stack: str, parallel: int, quiet: bool = False):
        self.verb, self.stack, self.parallel = verb, stack, max(1, parallel)
        self.t0 = time.monotonic()
        self.timings: list[Timing] = []
        self.print_lock = threading.Lock()
        self.quiet = quiet
        self.outputs: dict[str, str] = {}
        # Host memory in use (MemTotal - MemAvailable), sampled every second.
        self.mem_peak_kib = self.mem_start_kib = _mem_used_kib()
        self.sampling = True
        threading.Thread(target=self._sample_memory, daemon=True).start()

    def _sample_memory(self) -> None:
        while self.sampling:
            self.mem_peak_kib = max(self.mem_peak_kib, _mem_used_kib())
            time.sleep(1)

    def log(self, text: str) -> None:
        with self.print_lock:
            print(f"[{time.monotonic() - self.t0:8.1f}s] {text}", flush=True)

    def execute(self, nodes: list[Node], deps: dict[str, set], work: Callable[[Node], Optional[str]],
                label: str) -> None:
        """Runs work(node) for every node once its deps are done, N at a time; on a failure
        nothing new starts, running work finishes, then Failed is raised."""
        pending = {n.urn: n for n in nodes}
        inside = set(pending)
        done: set[str] = set()
        running: dict[futures.Future, Node] = {}
        errors: list[str] = []
        with futures.ThreadPoolExecutor(max_workers=self.parallel) as pool:
            while pending or running:
                if not errors:
                    for urn, n in list(pending.items()):
                        if len(running) >= self.parallel:
                            break
                        if not (deps[urn] & inside) <= done:
                            continue
                        del pending[urn]
                        running[pool.submit(self._timed, n, work, label)] = n
                elif not running:
                    break
                if not running:
                    if pending:
                        raise Failed("graph runner: nothing can start (dependency outside the graph?)")
                    break
                finished, _ = futures.wait(list(running), return_when=futures.FIRST_COMPLETED)
                for f in finished:
                    n = running.pop(f)
                    try:
                        f.result()
                        done.add(n.urn)
                    except Exception as e:  # noqa: BLE001 - reported with the resource
                        errors.append(f"{n.name}: {e}")
        if errors:
            raise Failed("\n".join(errors))

    def _timed(self, node: Node, work, label: str) -> None:
        start = time.monotonic()
        self.log(f"{label} start  {node.type.split(':')[-1]:<8} {node.name}")
        try:
            result = work(node)
        except Exception as e:
            end = time.monotonic()
            self.timings.append(Timing(node.name, node.type, start - self.t0, end - self.t0, False))
            self.log(f"{label} FAIL   {node.type.split(':')[-1]:<8} {node.name} ({end - start:.1f}s)\n{e}")
            raise
        end = time.monotonic()
        skipped = result is None
        self.timings.append(Timing(node.name, node.type, start - self.t0, end - self.t0, True, skipped))
        if result is not None and not self.quiet:
            body = "\n".join("    " + line for line in str(result).rstrip().splitlines()[-12:])
            self.log(f"{label} done   {node.type.split(':')[-1]:<8} {node.name} ({end - start:.1f}s)"
                     + (f"\n{body}" if body.strip() else ""))
        else:
            self.log(f"{label} {'same' if skipped else 'done'}   {node.type.split(':')[-1]:<8} {node.name} "
                     f"({end - start:.1f}s)")

    def record(self, path: Optional[Path], extra: Optional[dict] = None) -> dict:
        data = {
            "runner": "tools/graph_runner.py (stands in for the provider plugins; not the Pulumi engine)",
            "verb": self.verb,
            "stack": self.stack,
            "parallel": self.parallel,
            "wall_seconds": round(time.monotonic() - self.t0, 1),
            "host_memory_used_mib": {"start": self.mem_start_kib // 1024, "peak": self.mem_peak_kib // 1024},
            "resources": [{**asdict(t), "seconds": round(t.seconds, 1)} for t in
                          sorted(self.timings, key=lambda t: t.start)],
            **(extra or {}),
        }
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=1))
        return data


def _mem_used_kib() -> int:
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])


def _inputs_equal(a: dict, b: dict) -> bool:
    strip = lambda d: {k: v for k, v in d.items() if k != "stdin"}  # noqa: E731
    return json.dumps(strip(a), sort_keys=True) == json.dumps(strip(b), sort_keys=True)


def prepare_host() -> None:
    sh(str(ROOT / "tools" / "libvirtd.sh"))


def up(stack: str, parallel: int, timing: Optional[Path], stack_file: Optional[Path] = None) -> dict:
    prepare_host()
    graph = capture(stack, stack_file)
    state = State(stack)
    run = Run("up", stack, parallel)
    changed = {n.urn for n in graph.nodes.values()
               if n.urn in state.resources and not _inputs_equal(state.resources[n.urn]["inputs"], n.inputs)}
    # pulumi-command runs `update`, or else `create`, when an input changed; a libvirt
    # resource would be replaced, which the runner does not emulate.
    replaced = [graph.nodes[u].name for u in changed if graph.nodes[u].type not in COMMAND_TYPES]
    if replaced:
        raise Failed(f"inputs changed for {replaced}: the runner does not replace libvirt resources; destroy first")
    with tempfile.TemporaryDirectory(prefix="graph-runner-") as tmp:
        ex = Executor(graph, run.log, Path(tmp))

        def work(node: Node) -> Optional[str]:
            if node.urn in state.resources and node.urn not in changed:
                return None
            out = ex.create(node)
            state.put(node)
            return out

        nodes = graph.order()
        run.log(f"up {stack}: {len(nodes)} resources, {len(state.resources)} already in state "
                f"({len(changed)} changed), parallel {parallel}")
        try:
            run.execute(nodes, {n.urn: n.deps for n in nodes}, work, "create")
        finally:
            data = run.record(timing)
            run.log(f"up {stack}: wall {data['wall_seconds']} s")
    return data


def rerun(stack: str, parallel: int, timing: Optional[Path], stack_file: Optional[Path] = None) -> dict:
    """Every command's create again, in order: the node scripts' second run."""
    graph = capture(stack, stack_file)
    state = State(stack)
    missing = [n.name for n in graph.nodes.values() if n.urn not in state.resources]
    if missing:
        raise Failed(f"not created yet: {missing}; run up first")
    run = Run("rerun", stack, parallel)
    results: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="graph-runner-") as tmp:
        ex = Executor(graph, run.log, Path(tmp))

        def work(node: Node) -> Optional[str]:
            if node.type not in COMMAND_TYPES:
                return None
            out = ex.create(node)
            results[node.name] = out
            return out

        nodes = graph.order()
        try:
            run.execute(nodes, {n.urn: n.deps for n in nodes}, work, "rerun")
        finally:
            data = run.record(timing, {"outputs": results})
            run.log(f"rerun {stack}: wall {data['wall_seconds']} s")
    return data


def destroy(stack: str, parallel: int, timing: Optional[Path], stack_file: Optional[Path] = None) -> dict:
    prepare_host()
    state = State(stack)
    graph = Graph({})  # filled from state: deletes run from what was created
    for urn, r in state.resources.items():
        graph.nodes[urn] = Node(urn, r["type"], r["name"], r["inputs"], set(r["deps"]) & set(state.resources), r["id"])
    graph.by_name = {n.name: n for n in graph.nodes.values()}
    graph.by_id = {n.id: n for n in graph.nodes.values()}
    run = Run("destroy", stack, parallel)
    dependents: dict[str, set] = {u: set() for u in graph.nodes}
    for n in graph.nodes.values():
        for d in n.deps:
            dependents[d].add(n.urn)
    with tempfile.TemporaryDirectory(prefix="graph-runner-") as tmp:
        ex = Executor(graph, run.log, Path(tmp))

        def work(node: Node) -> str:
            out = ex.delete(node)
            state.drop(node.urn)
            return out

        nodes = list(reversed(graph.order()))
        run.log(f"destroy {stack}: {len(nodes)} resources, parallel {parallel}")
        try:
            run.execute(nodes, dependents, work, "delete")
        finally:
            data = run.record(timing)
            run.log(f"destroy {stack}: wall {data['wall_seconds']} s")
    return data


def leftovers(stack: str, stack_file: Optional[Path] = None) -> list[str]:
    """What of the stack is still on this machine: every check by the real tool."""
    graph = capture(stack, stack_file)
    found = []
    names = {n.type: set() for n in graph.nodes.values()}
    for n in graph.nodes.values():
        names[n.type].add(n.inputs.get("name", n.name))
    domains = set(virsh("list", "--all", "--name").stdout.split())
    found += [f"domain {d}" for d in names.get(DOMAIN, set()) & domains]
    nets = set(virsh("net-list", "--all", "--name").stdout.split())
    found += [f"network {d}" for d in names.get(NETWORK, set()) & nets]
    pools = set(virsh("pool-list", "--all", "--name").stdout.split())
    found += [f"pool {d}" for d in names.get(POOL, set()) & pools]
    for n in graph.nodes.values():
        if n.type == POOL and os.path.exists(n.inputs["target"]["path"]):
            found.append(f"pool dir {n.inputs['target']['path']}")
        if n.type == NETWORK:
            if sh("ip", "link", "show", n.inputs["bridge"], check=False).returncode == 0:
                found.append(f"bridge {n.inputs['bridge']}")
            rules = sh("iptables", "-S", check=False).stdout
            found += [f"iptables: {line}" for line in rules.splitlines() if n.inputs["bridge"] in line]
    ps = sh("ps", "-eo", "pid=,args=").stdout
    for n in graph.nodes.values():
        if n.type == "command:local:Command" and "fence_virtd" in n.inputs.get("create", ""):
            m = re.search(r"^DIR=(\S+)$", n.inputs["create"], re.M)
            folder = shlex.split(m.group(1))[0] if m else None
            if folder:
                found += [f"process {line.strip()}" for line in ps.splitlines() if folder in line]
                if os.path.exists(folder):
                    found.append(f"dir {folder}")
    # This stack's rules only: other tenants (or other test labs) may share the host.
    config = program_graph.read_stack_file(stack_file) if stack_file else stack_config(stack)
    vlan = config.get("network", {}).get("vlanId")
    patterns = [rf"\bG2-{vlan}(-in)?\b"] if vlan is not None else []
    for n in graph.nodes.values():
        m = re.search(r"^PORT=(\S+)$", n.inputs.get("create", ""), re.M)
        if n.type == "command:local:Command" and m:
            patterns.append(rf"--dport {re.escape(shlex.split(m.group(1))[0])}\b")
    rules = sh("iptables", "-S", check=False).stdout
    found += [f"iptables: {line}" for line in rules.splitlines() if any(re.search(p, line) for p in patterns)]
    return sorted(set(found))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("verb", choices=["up", "rerun", "destroy", "capture", "leftovers"])
    p.add_argument("--stack", default="local")
    p.add_argument("--parallel", type=int, default=8, help="worker pool size; 1 is the serial baseline")
    p.add_argument("--timing", type=Path, help="write the JSON timing record here")
    p.add_argument("--stack-file", type=Path, help="read the config from this file instead of stacks/Pulumi.STACK.yaml")
    a = p.parse_args(argv)
    os.chdir(ROOT)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        if a.verb == "capture":
            g = capture(a.stack, a.stack_file)
            for n in g.order():
                print(f"{n.type:<32} {n.name:<40} <- {sorted(g.nodes[d].name for d in n.deps)}")
            return 0
        if a.verb == "leftovers":
            left = leftovers(a.stack, a.stack_file)
            print("\n".join(left) if left else "nothing left")
            return 1 if left else 0
        fn = {"up": up, "rerun": rerun, "destroy": destroy}[a.verb]
        fn(a.stack, a.parallel, a.timing, a.stack_file)
        if a.verb == "destroy":
            left = leftovers(a.stack, a.stack_file)
            if left:
                print("destroy left:\n  " + "\n  ".join(left), file=sys.stderr)
                return 1
            print("destroy: nothing left (virsh, ip link, ps, iptables)")
        return 0
    except Failed as e:
        print(f"graph runner: FAILED\n{e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Pulumi mock runtime leaves an event loop whose finalizer raises at interpreter
    # exit ("Invalid file descriptor: -1"): noise only, so skip the finalizers.
    os._exit(code)
