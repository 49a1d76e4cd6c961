"""The lab guard (render.host.lab_guard, render/scripts/host_lab_guard*.sh): shellcheck,
golden files, its wiring in every network mode, and the real scripts in network
namespaces of this machine.

The real part: a namespace "hv" stands in for the hypervisor. Its default route leaves by
a veth to a namespace "uplink"; the tenant bridge holds the host address of a TEST-NET-2
lab CIDR, with a veth port to a namespace "guest" holding a member's address. The
rendered scripts run there exactly as the program runs them on a local hypervisor
(`bash -c SCRIPT`), with stand-in resolver files in a private mount namespace. Packets
leaving by the default route are counted on both ends of the uplink veth (no IPv6 and a
permanent neighbour entry, so nothing else crosses it). A libvirtd of its own, in the
hypervisor's namespace with empty libvirt directories, starts and restarts an isolated
network behind the guard. Nothing outside the namespaces this file makes is touched,
and they (and that libvirtd) are gone afterwards whatever the outcome.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import time
from importlib import resources
from pathlib import Path

import pytest

from conftest import example_stacks, program, require_tool, shellcheck, stack_config
from render import host
from render.script import values_of
from spec import SpecError, build, load_spec
from spec.vocabulary import SECRET_KEYS
from spec.topology import Topology

STACKS = example_stacks()
SCRIPTS = resources.files("render.scripts")
LIB = SCRIPTS.joinpath("lib.sh").read_text()
BODIES = ["host_lab_guard.sh", "host_lab_guard_delete.sh"]


def topology(stack: str, tenant: str = "", **network) -> Topology:
    config = stack_config(stack)
    config["network"] = {**config["network"], **network}
    config["tenant"] = tenant or config["tenant"]
    try:
        return build(load_spec(config))
    except SpecError:
        return build(load_spec(config, frozenset(SECRET_KEYS)))


# --- rendering -------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_rendered_scripts_pass_shellcheck(stack):
    script = host.lab_guard(topology(stack))
    for text in (script.create, script.delete):
        # SC2034: create and delete share one set of values, each uses part of them.
        res = shellcheck(text, "SC2034")
        assert res.returncode == 0, res.stdout


@pytest.mark.parametrize("body", BODIES)
def test_body_files_pass_shellcheck(body):
    res = shellcheck("#!/bin/bash\n" + LIB + "\n" + SCRIPTS.joinpath(body).read_text(), "SC2154", "SC2153")
    assert res.returncode == 0, res.stdout


@pytest.mark.parametrize("stack", STACKS)
def test_matches_golden_files(stack, golden):
    script = host.lab_guard(topology(stack))
    golden(f"host/{stack}/lab-guard.sh", script.create)
    golden(f"host/{stack}/lab-guard-delete.sh", script.delete)


@pytest.mark.parametrize("stack", STACKS)
def test_values_are_the_tenants_cidr_and_bridge(stack):
    topo = topology(stack)
    cidr = topo.spec.network.cidr
    script = host.lab_guard(topo)
    expected = {
        "STEP": "lab-guard",
        "CIDR": str(cidr),
        "BRIDGE": topo.bridge,
        "SUPPRESS_PREFIXLENGTH": str(cidr.prefixlen - 1),
        "LOOKUP_PRIORITY": str(host.LAB_GUARD_PRIORITY),
        "BLOCK_PRIORITY": str(host.LAB_GUARD_PRIORITY + 1),
    }
    assert values_of(script.create) == values_of(script.delete) == expected
    # Ahead of the main table's rule (32766), where the default route is.
    assert host.LAB_GUARD_PRIORITY + 1 < 32766


# --- wiring: one guard per tenant network, before its segment, in every mode ------------


def script(command: str) -> str:
    """The node script in a command's text (a remote host's is wrapped as bash -c SCRIPT)."""
    return shlex.split(command)[2] if command.startswith("bash -c ") else command


MODES = {
    "isolated": ("local", {}),
    "vlan": ("globex-prod", {}),
    "ovs": ("globex-prod", {"mode": "ovs", "bridge": "ovsbr0"}),
}


@pytest.mark.usefixtures("local_key_files")
@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_network_mode_has_its_guard_before_its_segment(mode):
    stack, network = MODES[mode]
    config = stack_config(stack)
    config["network"] = {**config["network"], **network}
    prog = program(stack, config)
    topo = topology(stack, **network)
    assert topo.spec.network.mode == mode
    tenant_networks = prog.of_type("gfs2-cluster:hypervisor:TenantNetwork")
    assert len(tenant_networks) == len(topo.spec.hypervisors) == 1
    guard = prog.named("-net-guard")
    assert guard.parent == tenant_networks[0].urn
    expected = host.lab_guard(topo)
    assert (script(guard.inputs["create"]), script(guard.inputs["delete"])) == (expected.create, expected.delete)
    bridges = [r for r in prog.commands() if r.name.endswith("-net-bridge")]
    segments = prog.of_type("libvirt:index/network:Network") + bridges
    assert len(segments) == (0 if mode == "ovs" else 1)
    for segment in segments:
        assert segment.parent == tenant_networks[0].urn
        assert guard.urn in segment.dependencies, f"{segment.name} does not wait for the guard"
    # The guests reach the segment only through it, so they wait for the guard too.
    for domain in prog.of_type("libvirt:index/domain:Domain"):
        assert prog.depends(domain, guard), f"{domain.name} before the guard"


# --- the real scripts in network namespaces ----------------------------------------------

LAB_CIDR = "198.51.100.0/24"  # TEST-NET-2 (RFC 5737)
LAB_VLAN = 3999
UPLINK_HV, UPLINK_GW = "203.0.113.2", "203.0.113.1"  # TEST-NET-3: the default route
OUTSIDE_RESOLVER = "203.0.113.53"

# Runs a script in the namespace with stand-in resolver files, in a mount namespace of its
# own: a tmpfs over /run (systemd-resolved's list) and a file over /etc/resolv.conf (or
# over its target, where it links into /run).
WITH_RESOLVERS = r"""
set -euo pipefail
etc=$1 resolved=$2 script=$3
target=$(readlink -f /etc/resolv.conf)
mount -t tmpfs g2-lab-guard-test /run
if [[ $target == /run/* ]]; then
  mkdir -p "$(dirname "$target")"
  printf '%s\n' "$etc" >"$target"
elif [[ -e $target ]]; then
  printf '%s\n' "$etc" >/run/resolv.conf
  mount --bind /run/resolv.conf "$target"
else
  echo "cannot stand in for /etc/resolv.conf ($target)" >&2
  exit 99
fi
if [[ -n $resolved ]]; then
  mkdir -p /run/systemd/resolve
  printf '%s\n' "$resolved" >/run/systemd/resolve/resolv.conf
fi
exec /bin/bash -c "$script"
"""


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    run = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and run.returncode != 0:
        raise AssertionError(f"{shlex.join(args)} exited {run.returncode}:\n{run.stdout}{run.stderr}")
    return run


class Lab:
    """Three namespaces named after this process and a random id: hv (the hypervisor),
    uplink (where its default route leads) and guest (a member on the tenant bridge)."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.hv, self.uplink, self.guest = (f"g2guard-{run_id}-{role}" for role in ("hv", "uplink", "guest"))
        # Under names of its own: the local stack may be up on this machine.
        self.topo = topology("local", tenant="labguard", cidr=LAB_CIDR, vlanId=LAB_VLAN)
        self.bridge = self.topo.bridge
        self.host_cidr = f"{self.topo.host_address}/{self.topo.spec.network.cidr.prefixlen}"
        self.member = str(self.topo.members[0].address)
        self.made: list[str] = []

    # building
    def setup(self) -> None:
        for ns in (self.hv, self.uplink, self.guest):
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            for key in ("all", "default"):
                self.sysctl(ns, f"net.ipv6.conf.{key}.disable_ipv6=1")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.hv, "link", "add", "up0", "type", "veth", "peer", "name", "up0", "netns", self.uplink)
        sh("ip", "-n", self.hv, "addr", "add", f"{UPLINK_HV}/24", "dev", "up0")
        sh("ip", "-n", self.uplink, "addr", "add", f"{UPLINK_GW}/24", "dev", "up0")
        for ns in (self.hv, self.uplink):
            sh("ip", "-n", ns, "link", "set", "up0", "up")
        sh("ip", "-n", self.hv, "route", "add", "default", "via", UPLINK_GW, "dev", "up0")
        mac = json.loads(sh("ip", "-n", self.uplink, "-j", "link", "show", "up0").stdout)[0]["address"]
        sh("ip", "-n", self.hv, "neigh", "replace", UPLINK_GW, "lladdr", mac, "dev", "up0", "nud", "permanent")
        sh("ip", "-n", self.hv, "link", "add", "port0", "type", "veth", "peer", "name", "eth0", "netns", self.guest)
        sh("ip", "-n", self.guest, "addr", "add", f"{self.member}/24", "dev", "eth0")
        sh("ip", "-n", self.guest, "link", "set", "eth0", "up")
        sh("ip", "-n", self.hv, "link", "set", "port0", "up")

    def sysctl(self, ns: str, setting: str) -> None:
        sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", setting)

    def make_bridge(self) -> None:
        """The tenant bridge as the segment steps leave it: host address, up, one port."""
        sh("ip", "-n", self.hv, "link", "add", self.bridge, "type", "bridge")
        sh("ip", "-n", self.hv, "addr", "add", self.host_cidr, "dev", self.bridge)
        sh("ip", "-n", self.hv, "link", "set", "port0", "master", self.bridge)
        sh("ip", "-n", self.hv, "link", "set", self.bridge, "up")

    def delete_bridge(self) -> None:
        sh("ip", "-n", self.hv, "link", "del", self.bridge)

    def teardown(self) -> list[str]:
        for ns in reversed(self.made):
            sh("ip", "netns", "del", ns, check=False)
        listed = sh("ip", "netns", "list").stdout
        return [ns for ns in self.made if ns in listed]

    # running
    def run(
        self, script: str, etc: str = f"nameserver {OUTSIDE_RESOLVER}", resolved: str = ""
    ) -> subprocess.CompletedProcess:
        """A rendered script on the stand-in hypervisor, its resolvers those given."""
        return sh(
            "ip", "netns", "exec", self.hv, "unshare", "-m", "--propagation", "private",
            "bash", "-c", WITH_RESOLVERS, "with-resolvers", etc, resolved, script,
            check=False, timeout=60,
        )

    def rules(self) -> list[str]:
        return sh("ip", "-n", self.hv, "-4", "rule", "show").stdout.splitlines()

    def route_get(self, address: str) -> subprocess.CompletedProcess:
        return sh("ip", "-n", self.hv, "-4", "route", "get", address, check=False)

    def uplink_packets(self) -> tuple[int, int]:
        """(sent by hv on its uplink, received by the uplink namespace)."""

        def stats(ns: str) -> dict:
            return json.loads(sh("ip", "-n", ns, "-s", "-j", "link", "show", "up0").stdout)[0]["stats64"]

        return stats(self.hv)["tx"]["packets"], stats(self.uplink)["rx"]["packets"]

    def send_udp(self, address: str) -> str:
        """One datagram from hv to address; what bash said (empty when it was sent)."""
        res = sh("ip", "netns", "exec", self.hv, "bash", "-c", f"echo probe >/dev/udp/{address}/9", check=False)
        return res.stderr

    def connect_tcp(self, address: str) -> str:
        """What a TCP connection from hv to a closed port says: refused is a round trip."""
        res = sh(
            "ip", "netns", "exec", self.hv, "timeout", "5", "bash", "-c", f"exec 3<>/dev/tcp/{address}/9",
            check=False,
        )
        return res.stderr if res.returncode != 124 else "timed out"

    def leaked(self, address: str) -> tuple[int, int, str]:
        """Packets that crossed the uplink while one datagram was sent to address."""
        before = self.uplink_packets()
        said = self.send_udp(address)
        after = self.uplink_packets()
        return after[0] - before[0], after[1] - before[1], said


@pytest.fixture
def lab():
    if os.geteuid() != 0:
        pytest.fail("the lab guard runs in network namespaces: run as root")
    for tool in ("ip", "unshare", "sysctl", "timeout"):
        require_tool(tool)
    lab = Lab(f"{os.getpid()}-{secrets.token_hex(2)}")
    try:
        lab.setup()
        yield lab
    finally:
        left = lab.teardown()
    assert not left, f"namespaces left behind: {left}"


def result_line(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout.strip().splitlines()[-1].split("]: ", 1)[1]


def test_real_guard_keeps_the_lab_off_the_default_route_with_or_without_its_bridge(lab):
    guard = host.lab_guard(lab.topo)
    lab_addresses = [lab.member, str(lab.topo.spec.network.cidr.network_address + 200)]
    # Control, without the guard: the lab works through its bridge, and without the bridge
    # a lab address takes the default route, which the counters see.
    lab.make_bridge()
    assert "Connection refused" in lab.connect_tcp(lab.member)
    lab.delete_bridge()
    assert f"via {UPLINK_GW} dev up0" in lab.route_get(lab.member).stdout
    assert lab.leaked(lab.member) == (1, 1, "")

    # The guard goes in first (an isolated network's bridge comes after it).
    before = lab.rules()
    first = lab.run(guard.create)
    assert result_line(first).startswith("result: changed: "), first.stdout
    added = [r for r in lab.rules() if r not in before]
    assert len(added) == 2, added

    lab.make_bridge()
    for address in lab_addresses:
        assert f"dev {lab.bridge} src {lab.topo.host_address}" in lab.route_get(address).stdout
    assert "Connection refused" in lab.connect_tcp(lab.member), "the guard cut the lab off its own bridge"
    # Outside the lab the default route still serves.
    assert f"via {UPLINK_GW} dev up0" in lab.route_get("100.64.0.1").stdout
    assert lab.leaked("100.64.0.1") == (1, 1, "")

    for gone in ("down", "deleted"):
        if gone == "down":
            sh("ip", "-n", lab.hv, "link", "set", lab.bridge, "down")
        else:
            lab.delete_bridge()
        for address in lab_addresses:
            route = lab.route_get(address)
            assert route.returncode != 0 and "unreachable" in route.stderr, (gone, route.stdout, route.stderr)
            sent, received, said = lab.leaked(address)
            assert (sent, received) == (0, 0), f"bridge {gone}: {address} left by the default route"
            assert "Network is unreachable" in said, said
        assert "Network is unreachable" in lab.connect_tcp(lab.member)

    # Back again: the bridge's route wins with no rerun.
    lab.make_bridge()
    assert "Connection refused" in lab.connect_tcp(lab.member)

    rules = lab.rules()
    again = lab.run(guard.create)
    assert result_line(again) == "result: unchanged", again.stdout
    assert lab.rules() == rules


@pytest.mark.parametrize(
    "case",
    ["nameserver", "resolved-upstream", "address", "peer", "gateway"],
)
def test_real_guard_refuses_a_cidr_holding_what_the_machine_uses(lab, case):
    guard = host.lab_guard(lab.topo)
    inside = "198.51.100.53"
    etc, resolved = f"nameserver {OUTSIDE_RESOLVER}", ""
    if case == "nameserver":
        etc = f"search example.net\nnameserver 2001:db8::53\nnameserver {inside}"
        expected = f"{inside} (nameserver in /etc/resolv.conf)"
    elif case == "resolved-upstream":
        etc, resolved = "nameserver 127.0.0.53", f"nameserver {inside}"
        expected = f"{inside} (nameserver in /run/systemd/resolve/resolv.conf)"
    elif case == "address":
        sh("ip", "-n", lab.hv, "addr", "add", f"{inside}/32", "dev", "lo")
        expected = f"{inside} (address on lo)"
    elif case == "peer":
        sh("ip", "-n", lab.hv, "addr", "add", "203.0.113.9", "peer", f"{inside}/32", "dev", "up0")
        expected = f"{inside} (peer of up0)"
    else:
        sh("ip", "-n", lab.hv, "route", "add", "100.64.0.0/24", "via", inside, "dev", "up0", "onlink")
        expected = f"{inside} (gateway on up0)"
    lab.make_bridge()  # the tenant's own address on its bridge is no clash
    before = lab.rules()
    refused = lab.run(guard.create, etc, resolved)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"error: {LAB_CIDR} holds what this machine uses: {expected}; " in refused.stderr, refused.stderr
    assert "give this tenant another network.cidr" in refused.stderr
    assert "result:" not in refused.stdout
    assert lab.rules() == before


def test_real_guard_allows_the_tenants_own_addresses_on_its_bridge(lab):
    lab.make_bridge()
    sh("ip", "-n", lab.hv, "addr", "add", "198.51.100.250/24", "dev", lab.bridge)
    run = lab.run(host.lab_guard(lab.topo).create)
    assert result_line(run).startswith("result: changed: "), run.stdout + run.stderr


def test_real_delete_removes_exactly_its_guard_and_is_idempotent(lab):
    guard = host.lab_guard(lab.topo)
    other = host.lab_guard(topology("local", tenant="labguard2", cidr="10.251.7.0/24", vlanId=LAB_VLAN - 1))
    baseline = lab.rules()
    for script in (other, guard):
        assert result_line(lab.run(script.create)).startswith("result: changed: ")
    with_other = [r for r in lab.rules() if r not in baseline]
    assert len(with_other) == 4 and all("10.251.7.0/24" in r or LAB_CIDR in r for r in with_other)

    removed = lab.run(guard.delete)
    assert result_line(removed).startswith("result: changed: removed rule "), removed.stdout
    left = lab.rules()
    assert not any(LAB_CIDR in r for r in left), left
    assert sorted(r for r in left if r not in baseline) == sorted(r for r in with_other if "10.251.7.0/24" in r)
    # Without its guard (and its bridge) the lab address takes the default route again.
    assert f"via {UPLINK_GW} dev up0" in lab.route_get(lab.member).stdout

    again = lab.run(guard.delete)
    assert result_line(again) == "result: unchanged", again.stdout
    assert lab.rules() == left
    assert result_line(lab.run(other.delete)).startswith("result: changed: ")
    assert lab.rules() == baseline


# --- the real libvirtd: an isolated network starts, and restarts, behind the guard -------

# A libvirtd of its own in the stand-in hypervisor: its own network namespace, and empty
# config, state and socket directories in a mount namespace of its own.
START_LIBVIRTD = r"""
set -euo pipefail
for dir in /etc/libvirt /var/lib/libvirt /var/cache/libvirt /run/libvirt /var/log/libvirt; do
  mount -t tmpfs g2-lab-guard-test "$dir"
done
libvirtd -d -p "$1"
for _ in $(seq 100); do
  [[ -S /run/libvirt/libvirt-sock ]] && exit 0
  sleep 0.1
done
echo "libvirtd made no socket" >&2
exit 1
"""


def isolated_network_xml(topo: Topology) -> str:
    """What the stack's libvirt.Network (mode none, no DHCP, no DNS) defines."""
    return (
        f"<network><name>{topo.names.network}</name><bridge name='{topo.bridge}'/><dns enable='no'/>"
        f"<ip address='{topo.host_address}' prefix='{topo.spec.network.cidr.prefixlen}'/></network>"
    )


@pytest.fixture
def libvirtd(lab, tmp_path):
    """virsh(*args) against a libvirtd started in lab.hv, stopped by its PID afterwards."""
    require_tool("libvirtd")
    require_tool("nsenter")
    pid_file = tmp_path / "libvirtd.pid"
    started = sh("ip", "netns", "exec", lab.hv, "unshare", "-m", "--propagation", "private",
                 "bash", "-c", START_LIBVIRTD, "start-libvirtd", str(pid_file), check=False, timeout=60)
    pid = int(pid_file.read_text()) if pid_file.exists() and pid_file.read_text().strip() else None
    try:
        assert started.returncode == 0, started.stdout + started.stderr

        def virsh(*args: str) -> subprocess.CompletedProcess:
            return sh("nsenter", "-t", str(pid), "-m", "-n", "virsh", "-q", "-c", "qemu:///system", *args,
                      check=False, timeout=60)

        yield virsh
    finally:
        if pid is not None:
            stop(pid)


def stop(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
        time.sleep(0.1)


def test_real_libvirt_network_starts_and_restarts_behind_the_guard(lab, libvirtd, tmp_path):
    xml = tmp_path / "network.xml"
    xml.write_text(isolated_network_xml(lab.topo))
    name = lab.topo.names.network
    assert libvirtd("net-define", str(xml)).returncode == 0
    # Why the guard is no route in the main table: libvirt refuses to start a network
    # whose CIDR has one, of any type.
    sh("ip", "-n", lab.hv, "route", "add", "unreachable", LAB_CIDR, "metric", "4242")
    refused = libvirtd("net-start", name)
    assert refused.returncode != 0 and "Network is already in use by interface *" in refused.stderr, refused
    sh("ip", "-n", lab.hv, "route", "del", "unreachable", LAB_CIDR, "metric", "4242")

    guard = host.lab_guard(lab.topo)
    assert result_line(lab.run(guard.create)).startswith("result: changed: ")
    for attempt in ("start", "restart"):
        started = libvirtd("net-start", name)
        assert started.returncode == 0, (attempt, started.stdout, started.stderr)
        assert f"dev {lab.bridge} src {lab.topo.host_address}" in lab.route_get(lab.member).stdout, attempt
        stopped = libvirtd("net-destroy", name)
        assert stopped.returncode == 0, (attempt, stopped.stdout, stopped.stderr)
        # libvirt removed the bridge: the guard holds.
        assert "unreachable" in lab.route_get(lab.member).stderr, attempt
        assert lab.leaked(lab.member)[:2] == (0, 0), attempt
    assert libvirtd("net-undefine", name).returncode == 0
    assert result_line(lab.run(guard.delete)).startswith("result: changed: ")
