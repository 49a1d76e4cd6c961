"""Tenant isolation with two tenant stacks up at once through `pulumi up`, on real
guests of this machine's libvirt (TCG).

Tenant A is the `local` stack (stacks/Pulumi.local.yaml); tenant B is the stack `lab-b`
of tests/isolation/Pulumi.lab-b.yaml (run from its copy in .state/stacks/). Leftovers of
both are removed by their names, then both come up at the same time, each through its
own Automation API stack. From a member of A every way into B must fail, each next to a
positive control inside a tenant; then destroying A through the engine must leave B as it
was. Whatever is still up at the end is destroyed, failures included, and nothing of
either stack may be left. The tests run in file order against the two clusters.

Needs root, and time: seven TCG guests (A: three members and a server, B: two and one).
Run: make e2e, or
  source tools/env.sh && python -m pytest -q -rA -s -m e2e tests/isolation/test_two_stacks.py
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pytest

import isolation_lab as iso
from isolation_lab import DENIED, TIMED_OUT, Answer
from live_stack import (
    Cluster, Engine, Guest, clean_start, cluster_of, crm_started_on, leftovers, purge, record, sha256_on, virsh,
)
from spec.topology import Topology

pytestmark = pytest.mark.e2e

B_STACK = "lab-b"
B_FILE = Path(__file__).resolve().parent / "Pulumi.lab-b.yaml"
# fence_xvm -t: seconds a listener has to answer (TCG guests, two clusters at work).
WAIT = 15
NBD_GREETING = "NBDMAGIC"  # what nbd-server sends first on every connection
SSH_GREETING = "SSH-"
FS_CLONE = "fs-shared-clone"  # both stacks' file system is named shared


@dataclass
class LiveTenant(iso.TenantNames):
    """One tenant stack up on this machine: its engine, topology and guests."""

    tag: str
    engine: Engine
    topo: Topology
    cluster: Cluster

    @property
    def m1(self) -> Guest:
        return self.cluster.members[0]

    @property
    def guests(self) -> list[Guest]:
        return [*self.cluster.members, self.cluster.server]

    def fence(self, guest: Guest, op: str, *, domain: Optional[str] = None, via: Optional["LiveTenant"] = None,
              group=None, port: Optional[int] = None) -> Answer:
        """fence_xvm in GUEST (a member of this tenant) with the key the stack gave it;
        by default to this tenant's listener."""
        via = via or self
        argv = iso.fence_argv(op, group or via.group, port or via.port, self.topo.fencing.member_key_path, WAIT, domain)
        return answer(guest, shlex.join(argv), timeout=WAIT * 4 + 60)


@dataclass
class Tenants:
    a: LiveTenant
    b: LiveTenant
    ups: dict[str, "Span"]


# ---------------------------------------------------------------------------------------
# In a guest


def answer(guest: Guest, command: str, timeout: float = 120) -> Answer:
    """COMMAND in the guest over SSH: its exit status and what it printed (both streams).
    A guest that does not answer SSH fails the test: that proves nothing either way."""
    out = guest.run(f"set +e\n( {command} ) 2>&1\nprintf '\\n__exit %s\\n' \"$?\"", timeout=timeout)
    said, _, status = out.rstrip().rpartition("\n__exit ")
    return Answer(int(status), said.strip())


def banner(guest: Guest, address, port: int, seconds: int = 8) -> Answer:
    """The first 8 bytes a TCP server at ADDRESS:PORT sends, read in the guest with bash's
    /dev/tcp: exit 0 with them; 124 when nothing answered in time; 1 when refused."""
    read = f"exec 3<>/dev/tcp/{address}/{port} && head -c 8 <&3"
    return answer(guest, f"timeout {seconds} bash -c {shlex.quote(read)}", timeout=seconds + 60)


def ping(guest: Guest, address, marker: str = "") -> Answer:
    pattern = f" -p {marker.encode().hex()}" if marker else ""  # ping pads with at most 16 bytes
    return answer(guest, f"ping -n -c 3 -i 0.5 -W 2{pattern} {address}")


def gfs2_mounted(t: LiveTenant) -> dict[str, str]:
    return {m.name: m.run(f"findmnt -n -o FSTYPE {t.cluster.mount_point}", check=False).strip()
            for m in t.cluster.members}


# ---------------------------------------------------------------------------------------
# On the host


def domid(domain: str) -> str:
    return virsh("domid", domain).stdout.strip()


def macs_of(t: LiveTenant) -> set[str]:
    """Every MAC address of the tenant's segment: its guests, its bridge and the bridge's ports."""
    found = set()
    for d in t.domains:
        found |= set(iso.MAC.findall(virsh("domiflist", d).stdout))
    found.add(iso.link_info(t.bridge)["address"])
    found |= {p["address"] for p in json.loads(iso.sh("ip", "-j", "link", "show", "master", t.bridge).stdout)}
    return found


def host_side(t: LiveTenant) -> dict:
    """What of the tenant the host holds: bridge, its ports, iptables lines, fence_virtd,
    guests (libvirt domain id and state), the guard's rules, the libvirt network."""
    link = iso.link_info(t.bridge)
    pid = int((t.host_dir / "fence_virtd.pid").read_text().strip())
    return {
        "bridge": {**{k: link.get(k) for k in ("ifindex", "address", "mtu", "operstate")}, "up": "UP" in link["flags"]},
        "ports": sorted(p["ifname"] for p in json.loads(iso.sh("ip", "-j", "link", "show", "master", t.bridge).stdout)),
        "iptables": [line for line in iso.iptables_rules() if iso.names_tenant(line, t)],
        "fence_virtd": (pid, iso.pid_alive(pid), t.conf_path in iso.cmdline(pid)),
        "domains": {d: (domid(d), virsh("domstate", d).stdout.strip()) for d in sorted(t.domains)},
        "rules": [line for line in iso.sh("ip", "-4", "rule", "show").stdout.splitlines() if f"to {t.cidr} " in line],
        "network": virsh("net-info", t.topo.names.network).stdout,
    }


@dataclass
class Span:
    """One call made by at_once: when it ran, and what it returned or raised."""

    start: float = 0.0
    end: float = 0.0
    value: object = None
    error: Optional[BaseException] = None


def at_once(calls: dict[str, Callable[[], object]]) -> dict[str, Span]:
    """Each call in a thread of its own, all released together; returns when all ended."""
    spans = {key: Span() for key in calls}
    if not calls:
        return spans
    go = threading.Barrier(len(calls))

    def run(key: str, call: Callable[[], object]) -> None:
        go.wait()
        span = spans[key]
        span.start = time.monotonic()
        try:
            span.value = call()
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            span.error = e
        finally:
            span.end = time.monotonic()

    threads = [threading.Thread(target=run, args=item, name=f"engine-{item[0]}") for item in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return spans


# ---------------------------------------------------------------------------------------
# The two stacks


@pytest.fixture(scope="module")
def tenants():
    if os.geteuid() != 0:
        pytest.fail("the two-stack isolation tests need root (libvirt qemu:///system, iptables, tcpdump)")
    if shutil.which("tcpdump") is None and shutil.which("tcpdump", path="/usr/sbin:/sbin") is None:
        pytest.fail("tcpdump is not installed: run make setup")
    engines = {"a": clean_start(Engine("local")), "b": clean_start(Engine(B_STACK, B_FILE))}
    topos = {key: engine.topology() for key, engine in engines.items()}
    ups = at_once({key: engine.up for key, engine in engines.items()})
    try:
        failed = {key: f"{type(s.error).__name__}: {str(s.error)[-3000:]}" for key, s in ups.items() if s.error}
        assert not failed, f"pulumi up failed: {failed}"
        a, b = (LiveTenant(key, engines[key], topos[key], cluster_of(engines[key], ups[key].value)) for key in "ab")
        yield Tenants(a, b, ups)
    finally:
        # Both down at once too, whatever happened; then nothing of either may be left.
        downs = at_once({key: engine.destroy for key, engine in engines.items() if engine.resources()})
        left = {key: leftovers(topo) for key, topo in topos.items()}
        for topo in topos.values():
            purge(topo)
        failed = {key: f"{type(s.error).__name__}: {str(s.error)[-2000:]}" for key, s in downs.items() if s.error}
        assert not failed and not any(left.values()), f"destroy failed: {failed}; left after the destroys: {left}"


def test_both_stacks_came_up_at_once(tenants: Tenants):
    a, b = tenants.a, tenants.b
    ups = tenants.ups
    for key, span in ups.items():
        run = span.value
        assert run.result == "succeeded", (key, run.result)
        # The summary leaves out default providers; the steps include them.
        assert run.summary.get("create", 0) > 0 and set(run.ops.values()) == {"create"}, (key, run.summary)
    overlap = min(s.end for s in ups.values()) - max(s.start for s in ups.values())
    assert overlap > 0, "the two ups did not run at the same time"
    # Two tenants, nothing of one named like the other's.
    assert a.bridge != b.bridge and a.port != b.port and a.group != b.group
    assert not a.cidr.overlaps(b.cidr) and a.host_dir != b.host_dir and not a.domains & b.domains
    for t in (a, b):
        assert set(gfs2_mounted(t).values()) == {"gfs2"}, (t.stack_id, gfs2_mounted(t))
        assert crm_started_on(t.m1, FS_CLONE) == {m.name for m in t.cluster.members}, t.stack_id
    record("two-stacks-up", {
        "a_up_seconds": round(ups["a"].value.seconds, 1),
        "b_up_seconds": round(ups["b"].value.seconds, 1),
        "overlap_seconds": round(overlap, 1),
        "a_creates": ups["a"].value.summary.get("create", 0),
        "b_creates": ups["b"].value.summary.get("create", 0),
    })


# ---------------------------------------------------------------------------------------
# Block exports and addresses


def test_member_gets_no_answer_from_other_tenants_export(tenants: Tenants):
    a, b = tenants.a, tenants.b
    ea, eb = a.topo.exports[0], b.topo.exports[0]
    # Controls: each server greets its own tenant's member.
    for t, e in ((a, ea), (b, eb)):
        own = banner(t.m1, e.server_address, e.port)
        assert own.rc == 0 and own.said.startswith(NBD_GREETING), f"{t.stack_id}'s member, its own export: {own}"
    attack = banner(a.m1, eb.server_address, eb.port)
    assert attack.rc != 0 and NBD_GREETING not in attack.said, f"A's member reached B's nbd-server: {attack}"


def test_member_cannot_ping_or_connect_to_other_tenants_guests(tenants: Tenants):
    a, b = tenants.a, tenants.b
    # Controls: inside each tenant, a member pings and reaches sshd on the others.
    for t in (a, b):
        for g in t.guests[1:]:
            assert ping(t.m1, g.address).rc == 0, f"{t.stack_id}: m1 cannot ping {g.name}"
            said = banner(t.m1, g.address, 22)
            assert said.rc == 0 and said.said.startswith(SSH_GREETING), f"{t.stack_id}: m1 to {g.name}:22: {said}"
    for g in b.guests:
        echo = ping(a.m1, g.address)
        assert echo.rc != 0, f"A's member pings B's {g.name}: {echo}"
        said = banner(a.m1, g.address, 22)
        assert said.rc != 0 and SSH_GREETING not in said.said, f"A's member reached B's {g.name}:22: {said}"


# ---------------------------------------------------------------------------------------
# Fencing


def test_listener_lists_only_its_own_tenants_domains(tenants: Tenants):
    a, b = tenants.a, tenants.b
    for t, other in ((a, b), (b, a)):
        listed = t.fence(t.m1, "list")
        assert listed.rc == 0 and iso.listing(listed) == t.member_domains, f"{t.stack_id}: {listed}"
        assert not other.domains & set(listed.said.split()), f"{t.stack_id}'s listener names {other.stack_id}'s: {listed}"


@pytest.mark.parametrize("by", ["name", "uuid"])
def test_fencing_other_tenants_domain_through_own_listener_is_refused(tenants: Tenants, by: str):
    a, b = tenants.a, tenants.b
    # Control: the same request path for A's own domain (status fences nothing).
    own = a.fence(a.m1, "status", domain=a.cluster.members[1].domain)
    assert own.rc == 0 and "Status: ON" in own.said, own
    target = b.cluster.members[1].domain
    before = domid(target)
    assert before.isdigit(), f"{target} is not running"
    name = target if by == "name" else virsh("domuuid", target).stdout.strip()
    refused = a.fence(a.m1, "reboot", domain=name)
    assert refused.rc != 0 and DENIED in refused.said, f"A's listener did not refuse {name}: {refused}"
    assert domid(target) == before and virsh("domstate", target).stdout.strip() == "running", target


# (group, operation) of A's member's request to B's listener port, with A's key.
TO_B_PORT = {
    "list-on-B-group": ("b", "list"),
    "reboot-B-member-on-B-group": ("b", "reboot"),
    "list-on-A-group": ("a", "list"),
}


@pytest.mark.parametrize("attempt", list(TO_B_PORT))
def test_own_key_gets_no_answer_from_other_tenants_listener(tenants: Tenants, attempt: str):
    a, b = tenants.a, tenants.b
    group_of, op = TO_B_PORT[attempt]
    # Control: B's listener answers B's own member.
    listed = b.fence(b.m1, "list")
    assert listed.rc == 0 and iso.listing(listed) == b.member_domains, listed
    target = b.cluster.members[1].domain
    before, drops = domid(target), iso.input_drops(b.port)
    group = (a if group_of == "a" else b).group
    sent = a.fence(a.m1, op, via=b, group=group, domain=target if op == "reboot" else None)
    assert sent.rc != 0 and TIMED_OUT in sent.said, f"{attempt}: B's listener answered A's member: {sent}"
    assert not iso.listing(sent), sent
    assert domid(target) == before, f"{attempt}: {target} was restarted"
    if group_of == "a":
        # A's group is joined on A's bridge (A's daemon): the host takes the datagram in,
        # and B's INPUT rule drops it before B's daemon (IP_MULTICAST_ALL) would read it.
        assert iso.input_drops(b.port) > drops, "no INPUT rule dropped the datagram for B's listener port"


# ---------------------------------------------------------------------------------------
# Eavesdropping


def test_own_bridge_carries_none_of_other_tenants_traffic(tenants: Tenants, tmp_path):
    """tcpdump is not in the guest image (image/packages.txt): the captures run on the
    host, on A's bridge (everything A's members could see) and, as the control, B's."""
    a, b = tenants.a, tenants.b
    marker_a, marker_b = (f"G2ISO-{tag}-{secrets.token_hex(4)}" for tag in "AB")  # 16 bytes: ping's pad
    b_macs = macs_of(b)
    b1_mac = set(iso.MAC.findall(virsh("domiflist", b.m1.domain).stdout))
    caps = {t.tag: iso.Capture("", tmp_path / f"{t.bridge}.pcap", interface=t.bridge) for t in (a, b)}
    with iso.capturing(caps):
        assert ping(b.m1, b.cluster.server.address, marker_b).rc == 0, "B's member cannot ping its server"
        assert iso.listing(b.fence(b.m1, "list")) == b.member_domains
        assert banner(b.m1, b.topo.exports[0].server_address, b.topo.exports[0].port).said.startswith(NBD_GREETING)
        assert ping(a.m1, a.cluster.server.address, marker_a).rc == 0, "A's member cannot ping its server"
        time.sleep(1)
    assert marker_a.encode() in caps["a"].raw, "the capture on A's bridge saw nothing of A"
    leaks = iso.traces_of(caps["a"], b, b_macs, [marker_b])
    assert not leaks, "A's bridge carried B's traffic:\n" + "\n".join(leaks[:20])
    # Control: the same capture on B's bridge sees B's traffic, the same way.
    seen = iso.traces_of(caps["b"], b, b_macs, [marker_b])
    assert f"marker {marker_b!r} in the raw capture" in seen, caps["b"].text[-3000:]
    assert any(mac in line for mac in b1_mac for line in seen), "B's member's MAC is not in B's capture"
    assert marker_a.encode() not in caps["b"].raw


# ---------------------------------------------------------------------------------------
# Destroying one tenant


def test_destroying_a_leaves_b_untouched(tenants: Tenants):
    a, b = tenants.a, tenants.b
    before = host_side(b)
    assert before["fence_virtd"][1:] == (True, True), before["fence_virtd"]
    assert all(state == "running" and num.isdigit() for num, state in before["domains"].values()), before["domains"]
    assert before["iptables"] and before["rules"], before
    run = a.engine.destroy()
    assert run.result == "succeeded" and run.summary.get("delete", 0) > 0, (run.result, run.summary)
    assert leftovers(a.topo) == [], leftovers(a.topo)
    after = host_side(b)
    assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    # B's cluster keeps its file system, mounted and shared by both members.
    assert set(gfs2_mounted(b).values()) == {"gfs2"}, gfs2_mounted(b)
    assert crm_started_on(b.m1, FS_CLONE) == {m.name for m in b.cluster.members}
    path = f"{b.cluster.mount_point}/two-stacks-after-a.bin"
    b.m1.run(f"head -c 1M /dev/urandom >{path}; sync")
    assert {sha256_on(m, path) for m in b.cluster.members} == {sha256_on(b.m1, path)}
    record("two-stacks-destroy-a", {"destroy_seconds": round(run.seconds, 1)})
