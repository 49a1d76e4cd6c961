"""Two tenants on this machine, built by the real host-side scripts, with network
namespaces as their guests.

What is real here: the rendered host scripts (render.host.vlan_network and
fence_listener, run with bash exactly as the program runs them on a local hypervisor:
`bash -c SCRIPT`, the fence key base64 on stdin), the iptables chains and bridges they
make on this host's own network stack, each tenant's fence_virtd they start, the
rendered nbd-server config and allow-list served by the real nbd-server, and
fence_xvm, nbdinfo and tcpdump as clients.

What stands in for something else:
- guests: one network namespace per member and per storage server, attached by veth to
  the tenant bridge, with the member's address and the rendered gateway (the tenant's
  host address);
- the libvirt backend: fence_virtd's `uri` is a libvirt test-driver file listing every
  guest of both tenants (fixed UUIDs), instead of qemu:///system. That is the only
  difference from the rendered listener script (checked in listener_script); the real
  libvirtd of this machine holds other people's guests and is never handed to a
  daemon under test;
- the trunk: a dummy interface, or a tap where the kernel has no dummy driver. Where
  the kernel has no 802.1Q support either, TRUNK.VLAN is created beforehand as a tap
  of that name: the script then finds it (check, then act) and skips only its
  `ip link add ... type vlan` line (Lab.vlan_kind says which case ran);
- the export's disk: a sparse file instead of the server's /dev/vdX, and nbd-server
  started directly with the rendered unit's ExecStart arguments (no systemd here).

Everything the lab makes carries its run id; teardown runs the delete scripts, then
removes whatever is left (by name, by PID) and reports what it still finds.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import ipaddress
import json
import os
import random
import re
import secrets
import selectors
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple, Optional

from conftest import stack_config
from render import host
from render.exports import nbd
from render.script import NodeScript
from spec import build, load_spec
from spec.vocabulary import SECRET_KEYS
from spec.topology import ExportPlan, Guest, Topology

TEMPLATE = "globex-prod"
HOST_DIRS = Path("/etc/gfs2-cluster")
# RFC 2544 benchmark space: never a real network, so a tenant route cannot shadow one.
CIDR_POOL = ipaddress.IPv4Network("198.18.0.0/15")
VLAN_POOL = range(3000, 4000)
EXPORT_BYTES = 64 * 2**20
TOOLS = ("ip", "iptables", "ss", "unshare", "bash", "base64", "fence_virtd", "fence_xvm", "nbd-server", "nbdinfo", "nbdcopy", "tcpdump")
# What fence_xvm says when no listener answers, and when one refuses the domain.
TIMED_OUT = "Timed out waiting for response"
DENIED = "Permission denied"


class Answer(NamedTuple):
    rc: int
    said: str


# ---------------------------------------------------------------------------------------
# Running things


def sh(*args: str, input: Optional[str] = None, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run(list(args), input=input, capture_output=True, text=True, timeout=timeout)
    if check and run.returncode != 0:
        raise RuntimeError(f"{shlex.join(args)} exited {run.returncode}:\n{run.stdout}{run.stderr}")
    return run


def in_ns(ns: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", ns, *args, **kwargs)


def run_script(script: str, stdin: Optional[str] = None, timeout: float = 120) -> str:
    """A node script as the program runs it on a local hypervisor (interpreter bash -c)."""
    run = subprocess.run(["/bin/bash", "-c", script], input=stdin, capture_output=True, text=True, timeout=timeout)
    if run.returncode != 0:
        raise RuntimeError(f"node script failed ({run.returncode}):\n{run.stdout}{run.stderr}")
    return run.stdout + run.stderr


def tool_missing() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None and shutil.which(t, path="/usr/sbin:/sbin") is None]


def links() -> set[str]:
    return {link["ifname"] for link in json.loads(sh("ip", "-j", "link", "show").stdout)}


def link_info(name: str, ns: Optional[str] = None) -> dict:
    prefix = ["ip", "-n", ns] if ns else ["ip"]
    return json.loads(sh(*prefix, "-j", "-d", "link", "show", "dev", name).stdout)[0]


def iptables_rules() -> list[str]:
    return sh("iptables", "-w", "-S").stdout.splitlines()


def input_drops(port: int) -> int:
    """Packets dropped by INPUT rules for UDP to this port."""
    table = sh("iptables", "-w", "-L", "INPUT", "-v", "-n", "-x").stdout
    return sum(int(line.split()[0]) for line in table.splitlines() if " DROP " in f" {line} " and f"dpt:{port}" in line)


def names_tenant(line: str, t: "TenantNames") -> bool:
    """Whether an iptables -S line is about tenant t (its chains, bridge or fence port)."""
    return bool(re.search(rf"(^|\s){re.escape(t.chain)}(-\S+)?(\s|$)|(^|\s){re.escape(t.bridge)}(\s|$)|dpt:{t.port}\b|--dport {t.port}\b", line))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def processes_mentioning(text: str) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            line = cmdline(int(entry.name))
            if text in line:
                found[int(entry.name)] = line
    return found


def children(pid: int) -> list[int]:
    out = sh("ps", "-o", "pid=", "--ppid", str(pid), check=False).stdout
    return [int(p) for p in out.split()]


def stop(pid: int, timeout: float = 15) -> None:
    """End one process we started, by its PID."""
    if not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def wait_for(what: str, check, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


# Small clients run inside a namespace with this interpreter.
PROBE = """
import socket, sys
s = socket.socket()
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except socket.timeout:
    print("timeout")
except ConnectionRefusedError:
    print("refused")
except OSError as e:
    print("error", e.errno, e.strerror)
"""

SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
for target in sys.argv[3:]:
    s.sendto(sys.argv[1].encode(), (target, int(sys.argv[2])))
"""


def tcp_probe(ns: str, address, port: int, timeout: float = 4) -> str:
    """connected | refused (the peer's stack answered) | timeout | error ERRNO TEXT."""
    return in_ns(ns, shutil.which("python3") or "python3", "-c", PROBE, str(address), str(port), str(timeout), timeout=timeout + 30).stdout.strip()


def send_udp(ns: str, payload: str, port: int, *targets) -> None:
    in_ns(ns, shutil.which("python3") or "python3", "-c", SEND, payload, str(port), *map(str, targets))


# ---------------------------------------------------------------------------------------
# The two tenants


def _has(config: dict, dotted: str) -> bool:
    section, key = dotted.split(".")
    return key in (config.get(section) or {})


def tenant_config(tenant: str, vlan_id: int, cidr: ipaddress.IPv4Network, trunk: str) -> dict:
    """globex-prod as another tenant: its tenant name, VLAN, CIDR and this lab's trunk,
    with one NBD export server instead of the template's two iSCSI ones."""
    config = copy.deepcopy(stack_config(TEMPLATE))
    config["tenant"] = tenant
    config["network"] = {**config["network"], "vlanId": vlan_id, "cidr": str(cidr)}
    config["hypervisors"] = [{**config["hypervisors"][0], "trunk": trunk}]
    config["storage"] = {
        "servers": [{"name": "nbd1"}],
        "exports": [{"name": "data", "protocol": "nbd", "server": "nbd1", "sizeGib": 1}],
        "volumeGroups": [
            {
                "name": "vg_data",
                "exports": ["data"],
                "logicalVolumes": [{"name": "lv_data", "filesystem": {"fsName": "data", "mountPoint": "/srv/data"}}],
            }
        ],
    }
    return config


def topology(config: dict) -> Topology:
    secrets_set = frozenset(key for key, field_ in SECRET_KEYS.items() if not _has(config, field_))
    topo = build(load_spec(config, secrets_set))
    assert topo.spec.network.mode == "vlan" and topo.fencing.method == "fence_xvm", "the template changed"
    return topo


def domain_uuid(domain: str) -> str:
    # Fixed per name, so every daemon's test driver knows a domain by the same UUID, as
    # one libvirtd would.
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{domain}.gfs2-cluster.test"))


def node_xml(domains: list[str]) -> str:
    return "<node>" + "".join(
        f"<domain type='test'><name>{d}</name><uuid>{domain_uuid(d)}</uuid><memory>65536</memory>"
        "<os><type>hvm</type></os></domain>"
        for d in domains
    ) + "</node>"


def listener_script(topo: Topology, backend_uri: str) -> NodeScript:
    """render.host.fence_listener with only the libvirt backend's uri replaced."""
    hv = topo.spec.hypervisors[0]
    real = host.fence_listener(topo, hv)
    production = f'uri = "{host.local_libvirt_uri(hv)}";'
    if real.create.count(production) != 1 or real.delete.count(production) > 1 or "'" in backend_uri:
        raise AssertionError(f"the rendered listener no longer has one {production!r} line")
    swap = f'uri = "{backend_uri}";'
    return NodeScript(real.step, real.create.replace(production, swap), real.delete.replace(production, swap))


class TenantNames:
    """What a tenant's topology names on the hypervisor; a mixin for anything holding
    the tenant's Topology as `topo` (the lab's tenants, the isolation suite's stacks)."""

    topo: Topology

    @property
    def stack_id(self) -> str:
        return self.topo.names.stack_id

    @property
    def bridge(self) -> str:
        return self.topo.bridge

    @property
    def chain(self) -> str:
        return host.forward_chain(self.topo)

    @property
    def port(self) -> int:
        return self.topo.fencing.port

    @property
    def group(self) -> ipaddress.IPv4Address:
        return self.topo.fencing.multicast_address

    @property
    def cidr(self) -> ipaddress.IPv4Network:
        return self.topo.spec.network.cidr

    @property
    def host_dir(self) -> Path:
        return Path(self.topo.names.host_dir)

    @property
    def conf_path(self) -> str:
        return f"{self.topo.names.host_dir}/fence_virt.conf"

    @property
    def members(self) -> list[Guest]:
        return list(self.topo.member_guests)

    @property
    def domains(self) -> set[str]:
        return {g.domain for g in self.topo.guests}

    @property
    def member_domains(self) -> set[str]:
        return {m.domain for m in self.topo.members}


def fence_argv(op: str, group, port: int, key: str, wait: int, domain: Optional[str] = None) -> list[str]:
    """fence_xvm OP to the listener on GROUP:PORT, signed with the key file KEY."""
    args = ["fence_xvm", "-o", op, "-a", str(group), "-p", str(port), "-k", key, "-t", str(wait)]
    return args + (["-H", domain] if domain else [])


@dataclass
class Tenant(TenantNames):
    tag: str  # a or b
    topo: Topology
    key_file: Path
    key_b64: str
    network: NodeScript
    listener: NodeScript
    export: ExportPlan  # the rendered plan with the sparse file as its device
    export_file: Path
    namespaces: dict[str, str] = field(default_factory=dict)  # guest -> netns
    veths: dict[str, str] = field(default_factory=dict)  # guest -> host end
    nbd_pid: int = 0
    fence_pid: int = 0
    export_sha256: str = ""
    up: bool = False

    @property
    def vlan_if(self) -> str:
        return self.topo.names.vlan_interface(self.topo.spec.hypervisors[0].trunk)

    def ns(self, guest: str) -> str:
        return self.namespaces[guest]

    @property
    def server_ns(self) -> str:
        return self.namespaces[self.export.server]

    def member_ns(self, index: int) -> str:
        return self.namespaces[self.members[index].name]

    @property
    def export_uri(self) -> str:
        return f"nbd://{self.export.server_address}:{self.export.port}/{self.export.name}"

    def fence(self, ns: str, op: str, *, domain: Optional[str] = None, via: Optional["Tenant"] = None,
              key: Optional["Tenant"] = None, group=None, port: Optional[int] = None, wait: int = 6) -> Answer:
        """fence_xvm in namespace ns: by default to this tenant's listener with its key."""
        via = via or self
        args = fence_argv(op, group or via.group, port or via.port, str((key or self).key_file), wait, domain)
        run = in_ns(ns, *args, check=False, timeout=wait * 4 + 30)
        return Answer(run.returncode, (run.stdout + run.stderr).strip())

    def macs(self) -> set[str]:
        """Every MAC address of this tenant's segment: its guests, bridge, ports, uplink."""
        found = {link_info("eth0", ns)["address"] for ns in self.namespaces.values()}
        for name in [self.bridge, self.vlan_if, *self.veths.values()]:
            if name in links():
                found.add(link_info(name)["address"])
        return found


def listing(answer: Answer) -> set[str]:
    """Domain names of a fence_xvm -o list answer (NAME UUID STATE lines)."""
    return {line.split()[0] for line in answer.said.splitlines() if len(line.split()) == 3}


# ---------------------------------------------------------------------------------------
# The lab


class Lab:
    def __init__(self) -> None:
        self.run = secrets.token_hex(2)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"g2iso-{self.run}-", dir="/tmp"))
        # nbd-server drops to user nbd and opens the export and allow-list at each
        # connection: those need a searchable path. Keys stay in a 0700 folder.
        self.tmp.chmod(0o755)
        (self.tmp / "keys").mkdir(mode=0o700)
        self.trunk = f"g2t{self.run}"
        self.trunk_kind = ""
        self.vlan_kind = ""
        self.made_links: list[str] = []
        self.made_host_dirs_parent = not HOST_DIRS.exists()
        self.tenants: dict[str, Tenant] = {}
        # Names of host-side things made outside the two tenants (other_network).
        self.extra_names: list[str] = []

    @property
    def a(self) -> Tenant:
        return self.tenants["a"]

    @property
    def b(self) -> Tenant:
        return self.tenants["b"]

    # -- choosing names nobody uses -------------------------------------------------------

    def _pick(self) -> list[tuple[int, ipaddress.IPv4Network]]:
        taken_links = links()
        rules = "\n".join(iptables_rules())
        udp = sh("ss", "-Huan").stdout
        routes = [ipaddress.ip_network(r["dst"], strict=False)
                  for r in json.loads(sh("ip", "-j", "route", "show", "table", "all").stdout)
                  if r.get("dst", "default") not in ("default",) and ":" not in r.get("dst", ":")]

        def vlan_free(v: int) -> bool:
            return f"g2br{v}" not in taken_links and f"G2-{v}" not in rules and f":{20000 + v} " not in udp

        vlans = [v for v in random.sample(VLAN_POOL, len(VLAN_POOL)) if vlan_free(v)][:2]
        nets = [n for n in random.sample(list(CIDR_POOL.subnets(new_prefix=24)), 512)
                if not any(n.overlaps(r) for r in routes)][:2]
        if len(vlans) < 2 or len(nets) < 2:
            raise RuntimeError("no free VLAN ids or CIDRs for the lab")
        return list(zip(vlans, nets))

    # -- building ---------------------------------------------------------------------------

    def up(self) -> None:
        missing = tool_missing()
        if missing:
            raise RuntimeError(f"missing tools: {', '.join(missing)} (tcpdump: apt-get install tcpdump)")
        self._make_trunk()
        picks = self._pick()
        topos = {}
        for tag, (vlan, cidr) in zip("ab", picks):
            config = tenant_config(f"iso{tag}{self.run}", vlan, cidr, self.trunk)
            topos[tag] = topology(config)
        uri = f"test://{self.tmp / 'node.xml'}"
        (self.tmp / "node.xml").write_text(node_xml(sorted(d for t in topos.values() for d in {g.domain for g in t.guests})))
        for tag, topo in topos.items():
            key = secrets.token_bytes(32)
            key_file = self.tmp / "keys" / f"{tag}.key"
            key_file.write_bytes(key)
            key_file.chmod(0o600)
            export = topo.exports[0]
            export_file = self.tmp / f"{tag}-{export.name}.img"
            self.tenants[tag] = Tenant(
                tag, topo, key_file, base64.b64encode(key).decode(),
                host.vlan_network(topo, topo.spec.hypervisors[0]), listener_script(topo, uri),
                dataclasses.replace(export, device=str(export_file)), export_file,
            )
        for tenant in self.tenants.values():
            self._host_side(tenant)
        for tenant in self.tenants.values():
            self._guests(tenant)
            self._export(tenant)

    def _make_trunk(self) -> None:
        made = sh("ip", "link", "add", self.trunk, "type", "dummy", check=False)
        if made.returncode == 0:
            self.trunk_kind = "dummy"
        else:
            sh("ip", "tuntap", "add", "name", self.trunk, "mode", "tap")
            self.trunk_kind = "tap (this kernel has no dummy driver)"
        self.made_links.append(self.trunk)
        sh("ip", "link", "set", self.trunk, "up")
        # 802.1Q support, tried in a throw-away network namespace.
        probe = sh("unshare", "-n", "bash", "-c",
                   "ip link add p0 type veth peer name p1 && ip link add link p0 name p0.5 type vlan id 5", check=False)
        self.vlan_kind = "802.1q" if probe.returncode == 0 else "stand-in"

    def _host_side(self, t: Tenant) -> None:
        if t.host_dir.exists():
            raise RuntimeError(f"{t.host_dir} exists already")
        if self.vlan_kind == "stand-in":
            # No 802.1Q in this kernel: TRUNK.VLAN made here, found by the script.
            sh("ip", "tuntap", "add", "name", t.vlan_if, "mode", "tap")
            self.made_links.append(t.vlan_if)
        t.up = True
        run_script(t.network.create)
        run_script(t.listener.create, stdin=t.key_b64)
        pidfile = t.host_dir / "fence_virtd.pid"
        t.fence_pid = int(pidfile.read_text().strip())
        assert t.conf_path in cmdline(t.fence_pid), cmdline(t.fence_pid)

    def _guests(self, t: Tenant) -> None:
        prefix = t.cidr.prefixlen
        for index, guest in enumerate(t.topo.guests):
            ns = f"g2iso-{self.run}-{t.tag}-{guest.name}"
            veth = f"g2v{self.run}{t.tag}{index}"
            sh("ip", "netns", "add", ns)
            t.namespaces[guest.name] = ns
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            t.veths[guest.name] = veth
            sh("ip", "link", "set", veth, "master", t.bridge, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{guest.address}/{prefix}", "dev", "eth0")
            # The guests' rendered gateway (gfs2.gw): the tenant's host address.
            sh("ip", "-n", ns, "route", "add", "default", "via", str(t.topo.host_address))

    def _export(self, t: Tenant) -> None:
        e = t.export
        with open(t.export_file, "wb") as disk:
            disk.truncate(EXPORT_BYTES)
            for offset in sorted(random.sample(range(0, EXPORT_BYTES // 2**20), 4)):
                disk.seek(offset * 2**20)
                disk.write(secrets.token_bytes(2**20))
        shutil.chown(t.export_file, "root", "disk")
        t.export_file.chmod(0o660)
        t.export_sha256 = sha256_file(t.export_file)
        conf = self.tmp / f"{t.tag}-nbd.conf"
        allow = self.tmp / f"{t.tag}-nbd.allow"
        pidfile = self.tmp / f"{t.tag}-nbd.pid"
        conf.write_text(nbd.server_config(e, str(allow)) + "\n")
        allow.write_text(nbd.allow_list(t.topo) + "\n")
        conf.chmod(0o644)
        allow.chmod(0o644)
        # The rendered unit's ExecStart, with this lab's config and pid file.
        unit = nbd.server_unit(t.topo.exports[0])
        argv = shlex.split(re.search(r"^ExecStart=(.*)$", unit, re.M).group(1))
        assert argv[1:] == ["-C", nbd.config_path(e), "-p", nbd.pid_path(e)], argv
        in_ns(t.server_ns, argv[0], "-C", str(conf), "-p", str(pidfile))
        wait_for("nbd-server's pid file", lambda: pidfile.exists() and pidfile.read_text().strip().isdigit())
        t.nbd_pid = int(pidfile.read_text().strip())
        wait_for(f"nbd-server on {e.server_address}:{e.port}", lambda: f"{e.server_address}:{e.port}" in
                 in_ns(t.server_ns, "ss", "-Hltn").stdout)

    @contextmanager
    def other_network(self, tag: str, cidr: ipaddress.IPv4Network) -> Iterator[tuple[Topology, NodeScript]]:
        """A third tenant's network script on a free VLAN with the given CIDR; whatever
        it made is deleted by its delete script afterwards."""
        vlan = self._pick()[0][0]
        topo = topology(tenant_config(f"iso{tag}{self.run}", vlan, cidr, self.trunk))
        script = host.vlan_network(topo, topo.spec.hypervisors[0])
        vlan_if = topo.names.vlan_interface(self.trunk)
        self.extra_names += [topo.bridge, host.forward_chain(topo), topo.names.stack_id, vlan_if]
        if self.vlan_kind == "stand-in":
            sh("ip", "tuntap", "add", "name", vlan_if, "mode", "tap")
            self.made_links.append(vlan_if)
        try:
            yield topo, script
        finally:
            run_script(script.delete)
            if vlan_if in links():
                sh("ip", "link", "del", vlan_if)

    def free_cidr(self) -> ipaddress.IPv4Network:
        return self._pick()[0][1]

    # -- tearing down -----------------------------------------------------------------------

    def destroy_tenant_host_side(self, t: Tenant) -> list[str]:
        """The tenant's host-side delete scripts, in the order the program destroys
        them (the listener depends on the network)."""
        out = [run_script(t.listener.delete), run_script(t.network.delete)]
        t.up = False
        return out

    def down(self) -> list[str]:
        """Removes everything; returns what was still found afterwards."""
        errors: list[str] = []

        def attempt(what, fn, *args):
            try:
                fn(*args)
            except Exception as e:  # keep tearing down
                errors.append(f"{what}: {e}")

        for t in self.tenants.values():
            if t.nbd_pid:
                for child in children(t.nbd_pid):
                    if str(self.tmp) in cmdline(child) or "nbd-server" in cmdline(child):
                        attempt(f"stop nbd-server child {child}", stop, child)
                attempt(f"stop nbd-server {t.nbd_pid}", stop, t.nbd_pid)
        for t in self.tenants.values():
            if t.up:
                attempt(f"delete scripts of {t.stack_id}", self.destroy_tenant_host_side, t)
            if t.fence_pid and pid_alive(t.fence_pid) and t.conf_path in cmdline(t.fence_pid):
                errors.append(f"fence_virtd {t.fence_pid} survived its delete script")
                stop(t.fence_pid)
            for ns in t.namespaces.values():
                if ns in sh("ip", "netns", "list").stdout:
                    attempt(f"delete netns {ns}", sh, "ip", "netns", "del", ns)
        for t in self.tenants.values():
            for pid in processes_mentioning(t.conf_path):
                if "fence_virtd" in cmdline(pid):
                    attempt(f"stop leftover fence_virtd {pid}", stop, pid)
        for pid, line in processes_mentioning(str(self.tmp)).items():
            errors.append(f"process {pid} still uses the lab: {line}")
            attempt(f"stop {pid}", stop, pid)
        # A deleted namespace takes its veths along, a moment later.
        veths = {v for t in self.tenants.values() for v in t.veths.values()}
        try:
            wait_for("the namespaces' veths to go", lambda: veths.isdisjoint(links()), timeout=15)
        except TimeoutError as e:
            errors.append(str(e))
        for name in [*self.made_links, *(t.bridge for t in self.tenants.values()), *veths]:
            if name in links():
                sh("ip", "link", "del", name, check=False)
        self._sweep_iptables(errors)
        for t in self.tenants.values():
            if t.host_dir.exists():
                errors.append(f"{t.host_dir} survived its delete script")
                shutil.rmtree(t.host_dir, ignore_errors=True)
        if self.made_host_dirs_parent and HOST_DIRS.exists() and not any(HOST_DIRS.iterdir()):
            HOST_DIRS.rmdir()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return errors + self.leftovers()

    def _ours(self, line: str) -> bool:
        """Whether a link name or an iptables line names something of this lab."""
        exact = [self.trunk, *self.extra_names] + [w for t in self.tenants.values() for w in (t.bridge, t.chain, t.stack_id)]
        prefixes = [f"g2iso-{self.run}", f"g2v{self.run}"]
        for token in line.split():
            if any(token == w or token.startswith((w + "-", w + ".", w + "/")) for w in exact):
                return True
            if token.startswith(tuple(prefixes)):
                return True
        return any(f"--dport {t.port}" in line or f"dpt:{t.port}" in line for t in self.tenants.values())

    def _sweep_iptables(self, errors: list[str]) -> None:
        for line in iptables_rules():
            if line.startswith("-A ") and self._ours(line):
                errors.append(f"iptables rule left behind: {line}")
                sh("iptables", "-w", "-D", *shlex.split(line)[1:], check=False)
        for line in iptables_rules():
            if line.startswith("-N ") and self._ours(line):
                errors.append(f"iptables chain left behind: {line}")
                sh("iptables", "-w", "-F", line.split()[1], check=False)
                sh("iptables", "-w", "-X", line.split()[1], check=False)

    def leftovers(self) -> list[str]:
        found = []
        found += [f"link {n}" for n in links() if self._ours(n)]
        found += [f"netns {n}" for n in sh("ip", "netns", "list").stdout.split() if f"g2iso-{self.run}" in n]
        found += [f"iptables: {line}" for line in iptables_rules() if self._ours(line)]
        for t in self.tenants.values():
            found += [f"process {pid}: {line}" for pid, line in processes_mentioning(t.conf_path).items()]
            if t.host_dir.exists():
                found.append(f"folder {t.host_dir}")
        found += [f"process {pid}: {line}" for pid, line in processes_mentioning(str(self.tmp)).items()]
        if self.tmp.exists():
            found.append(f"folder {self.tmp}")
        return found


@contextmanager
def lab() -> Iterator[Lab]:
    the_lab = Lab()
    try:
        the_lab.up()
        yield the_lab
    finally:
        left = the_lab.down()
        if left:
            raise AssertionError("the lab left things behind (removed now where possible):\n  " + "\n  ".join(left))


def sha256_file(path: Path) -> str:
    return sh("sha256sum", str(path)).stdout.split()[0]


def export_sha256(ns: str, uri: str) -> str:
    """sha256 of a whole export read over NBD from namespace ns."""
    run = subprocess.run(
        f"set -o pipefail; ip netns exec {shlex.quote(ns)} timeout 60 nbdcopy {shlex.quote(uri)} - | sha256sum",
        shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=120,
    )
    if run.returncode != 0:
        raise RuntimeError(f"nbdcopy {uri} from {ns} exited {run.returncode} (124: still connecting after 60 s): {run.stderr}")
    return run.stdout.split()[0]


def nbdinfo_size(ns: str, uri: str, timeout: float = 8) -> Answer:
    """nbdinfo --size from ns; rc 124 when it was still connecting after timeout s."""
    run = in_ns(ns, "timeout", str(timeout), "nbdinfo", "--size", uri, check=False, timeout=timeout + 30)
    return Answer(run.returncode, (run.stdout + run.stderr).strip())


# ---------------------------------------------------------------------------------------
# Packet capture


@dataclass
class Capture:
    ns: str  # the network namespace, or "" for this host's own
    path: Path
    proc: Optional[subprocess.Popen] = None
    text: str = ""
    raw: bytes = b""
    interface: str = "eth0"


@contextmanager
def captures(lab_: Lab, *namespaces: str) -> Iterator[dict[str, Capture]]:
    """tcpdump -i eth0 in each namespace, by namespace (see capturing)."""
    with capturing({ns: Capture(ns, lab_.tmp / f"{ns}.pcap") for ns in namespaces}) as caps:
        yield caps


@contextmanager
def capturing(caps: dict[str, Capture]) -> Iterator[dict[str, Capture]]:
    """tcpdump on each capture's interface (promiscuous, the default), in its namespace
    or on this host, for the block's duration; afterwards each Capture holds the decoded
    text (-e: with MACs) and bytes."""
    try:
        for cap in caps.values():
            where = ["ip", "netns", "exec", cap.ns] if cap.ns else []
            cap.proc = subprocess.Popen(
                [*where, "tcpdump", "-i", cap.interface, "-nn", "-U", "-w", str(cap.path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
            _wait_listening(cap.proc)
        yield caps
    finally:
        for cap in caps.values():
            if cap.proc is not None and cap.proc.poll() is None:
                cap.proc.send_signal(signal.SIGINT)
                try:
                    cap.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    stop(cap.proc.pid)
    for cap in caps.values():
        cap.raw = cap.path.read_bytes() if cap.path.exists() else b""
        cap.text = sh("tcpdump", "-r", str(cap.path), "-nn", "-e", "-v", check=False).stdout


def _wait_listening(proc: subprocess.Popen, timeout: float = 20) -> None:
    selector = selectors.DefaultSelector()
    selector.register(proc.stderr, selectors.EVENT_READ)
    said = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=0.5):
            line = proc.stderr.readline()
            said += line
            if "listening on" in line:
                return
            if not line and proc.poll() is not None:
                break
    raise RuntimeError(f"tcpdump did not start: {said}")


MAC = re.compile(r"\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b")
IPV4 = re.compile(r"(?<![\d.])(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})(?=[.:,\s)]|$)")


def traces_of(cap: Capture, t: TenantNames, macs: set[str], markers: list[str]) -> list[str]:
    """Lines of a capture that carry anything of tenant t: one of its MACs, an address
    of its CIDR, its fence group or port; plus any marker found in the raw bytes."""
    hits = []
    for line in cap.text.splitlines():
        why = [m for m in MAC.findall(line) if m in macs]
        why += [a for a in IPV4.findall(line) if ipaddress.ip_address(a) in t.cidr or a == str(t.group)]
        if re.search(rf"\.{t.port}\b", line):
            why.append(f"port {t.port}")
        if why:
            hits.append(f"{sorted(set(why))}: {line}")
    hits += [f"marker {m!r} in the raw capture" for m in markers if m.encode() in cap.raw]
    return hits
