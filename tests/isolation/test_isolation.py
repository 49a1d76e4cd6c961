"""Tenant isolation on this machine, with the real host-side pieces of two tenants.

Two tenants A and B (globex-prod under other names, VLANs and CIDRs) get their bridge,
iptables chain and fence_virtd from the real rendered host scripts; network namespaces
stand in for their guests (see isolation_lab for what is real and what stands in).
From A's members every way into B must fail, each next to a positive control that
shows the same attempt working inside a tenant.

Needs root; changes this host's links and iptables for the duration, under names that
carry a random run id, and removes them afterwards (teardown fails if anything is left).
Run: source tools/env.sh && python -m pytest -q -m e2e tests/isolation
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import pytest

import isolation_lab as iso
from isolation_lab import DENIED, TIMED_OUT, Answer, input_drops
from isolation_lab import names_tenant as _names
from render import host

pytestmark = pytest.mark.e2e


def _preflight() -> None:
    if os.geteuid() != 0:
        pytest.fail("the isolation tests need root (bridges, iptables, network namespaces, fence_virtd)")
    missing = iso.tool_missing()
    if missing:
        pytest.fail(f"missing tools: {', '.join(missing)} (fence-virtd fence-virt nbd-server libnbd-bin tcpdump iproute2 iptables)")


@pytest.fixture(scope="module")
def lab():
    _preflight()
    with iso.lab() as the_lab:
        yield the_lab


def chain_drops(chain: str) -> int:
    table = iso.sh("iptables", "-w", "-L", chain, "-v", "-n", "-x").stdout
    return sum(int(line.split()[0]) for line in table.splitlines()[2:] if line.split()[2] == "DROP")


# ---------------------------------------------------------------------------------------
# What the scripts made


def test_scripts_give_each_tenant_its_own_bridge_chain_and_listener(lab):
    for t in lab.tenants.values():
        bridge = iso.link_info(t.bridge)
        assert bridge["linkinfo"]["info_kind"] == "bridge" and "UP" in bridge["flags"], bridge
        assert iso.link_info(t.vlan_if).get("master") == t.bridge
        addrs = iso.sh("ip", "-4", "-o", "addr", "show", "dev", t.bridge).stdout
        assert f"inet {t.topo.host_address}/{t.cidr.prefixlen} " in addrs, addrs
        rules = iso.iptables_rules()
        assert f"-A FORWARD -j {t.chain}" in rules
        assert f"-A {t.chain} -i {t.bridge} -j DROP" in rules and f"-A {t.chain} -o {t.bridge} -j DROP" in rules
        assert iso.pid_alive(t.fence_pid) and f"-f {t.conf_path} " in iso.cmdline(t.fence_pid) + " "
        conf = Path(t.conf_path).read_text()
        assert f'interface = "{t.bridge}";' in conf and f'port = "{t.port}";' in conf
        assert Path(t.host_dir / "fence_xvm.key").read_bytes() == t.key_file.read_bytes()
        # IPv4 rules only: no IPv6 on the bridge, so none to route between tenants.
        v6 = Path(f"/proc/sys/net/ipv6/conf/{t.bridge}/disable_ipv6")
        assert not v6.exists() or v6.read_text().strip() == "1"
        assert "inet6" not in iso.sh("ip", "-o", "addr", "show", "dev", t.bridge).stdout
    assert lab.a.key_file.read_bytes() != lab.b.key_file.read_bytes()
    # A second run changes nothing: same daemon, same key.
    said = iso.run_script(lab.a.listener.create, stdin=lab.a.key_b64)
    assert f"fence_virtd already running (pid {lab.a.fence_pid})" in said, said


# ---------------------------------------------------------------------------------------
# Block exports


def test_member_reads_its_own_tenants_export(lab):
    # Positive control for the next tests: the path member -> bridge -> server works.
    for t in lab.tenants.values():
        ns = t.member_ns(0)
        assert iso.nbdinfo_size(ns, t.export_uri) == Answer(0, str(iso.EXPORT_BYTES)), (
            f"{t.stack_id}'s member cannot read its own export over its own bridge"
        )
        assert iso.export_sha256(ns, t.export_uri) == t.export_sha256


def test_member_cannot_reach_other_tenants_export(lab):
    for src, dst in ((lab.a, lab.b), (lab.b, lab.a)):
        ns = src.member_ns(0)
        probe = iso.tcp_probe(ns, dst.export.server_address, dst.export.port)
        assert probe not in ("connected", "refused"), f"{src.tag} reached {dst.tag}'s server: {probe}"
        answer = iso.nbdinfo_size(ns, dst.export_uri)
        assert answer.rc != 0 and str(iso.EXPORT_BYTES) not in answer.said, answer


def _set_forwarding(bridges, value: str) -> dict[str, str]:
    """Sets net.ipv4.conf.BRIDGE.forwarding; returns the old values."""
    old = {}
    for bridge in bridges:
        path = Path(f"/proc/sys/net/ipv4/conf/{bridge}/forwarding")
        old[bridge] = path.read_text().strip()
        path.write_text(value)
    return old


def test_routing_hypervisor_drops_traffic_between_tenants(lab):
    """As on a hypervisor with IPv4 forwarding on (libvirt NAT networks turn it on):
    forwarding is switched on for the two tenant bridges only (per interface; the host's
    global setting stays), so A's member routes through its gateway towards B."""
    a, b = lab.a, lab.b
    ns = a.member_ns(0)
    old = _set_forwarding([a.bridge, b.bridge], "1")
    flushed = False
    try:
        before = chain_drops(a.chain) + chain_drops(b.chain)
        assert iso.tcp_probe(ns, b.export.server_address, b.export.port) == "timeout"
        assert chain_drops(a.chain) + chain_drops(b.chain) > before, "the packets were not dropped by the tenant chains"
        # Control: without the chains' rules the same probe gets through, so the chains
        # are what stops it (nbd-server's allow-list is the next line of defence).
        flushed = True
        for t in (a, b):
            iso.sh("iptables", "-w", "-F", t.chain)
        assert iso.tcp_probe(ns, b.export.server_address, b.export.port) == "connected"
        refused = iso.nbdinfo_size(ns, b.export_uri)
        assert refused.rc != 0 and "server policy prevents NBD_OPT_GO" in refused.said, refused
    finally:
        if flushed:
            for t in (a, b):
                iso.run_script(t.network.create)
        for bridge, value in old.items():
            Path(f"/proc/sys/net/ipv4/conf/{bridge}/forwarding").write_text(value)
    assert iso.tcp_probe(ns, b.export.server_address, b.export.port) != "connected"


# ---------------------------------------------------------------------------------------
# Fencing


def test_listener_lists_only_its_own_tenants_members(lab):
    for t in lab.tenants.values():
        answer = t.fence(t.member_ns(0), "list")
        assert answer.rc == 0 and iso.listing(answer) == t.member_domains, answer
    # Not a member (A's storage server): allowed on the segment, but in no group.
    answer = lab.a.fence(lab.a.server_ns, "list")
    assert answer == Answer(0, ""), answer


def test_member_fences_its_own_domains(lab):
    a = lab.a
    ns = a.member_ns(0)
    assert a.fence(ns, "status", domain=a.members[1].domain) == Answer(0, "Status: ON")
    assert a.fence(ns, "reboot", domain=a.members[3].domain).rc == 0
    assert a.fence(ns, "status", domain=a.members[3].domain) == Answer(0, "Status: ON")


# (operation, domain, listener, key, group, port, expected) from A's first member.
def _attempts(a, b):
    m2 = b.members[1].domain
    server = b.topo.guest(b.export.server).domain
    return {
        "list-via-B-listener-with-A-key": ("list", None, b, a, None, None, TIMED_OUT),
        "off-B-domain-via-B-listener-with-A-key": ("off", m2, b, a, None, None, TIMED_OUT),
        "off-B-domain-via-A-listener": ("off", m2, a, a, None, None, DENIED),
        "off-B-domain-by-uuid-via-A-listener": ("off", iso.domain_uuid(m2), a, a, None, None, DENIED),
        "off-B-server-by-derived-name-via-A-listener": ("off", server, a, a, None, None, DENIED),
        "off-guessed-B-member-via-A-listener": ("off", b.topo.names.domain("m5"), a, a, None, None, DENIED),
        "off-B-domain-to-B-port-on-A-group-with-A-key": ("off", m2, b, a, a.group, b.port, TIMED_OUT),
        "list-to-B-port-on-A-group-with-A-key": ("list", None, b, a, a.group, b.port, TIMED_OUT),
    }


ATTEMPTS = [
    "list-via-B-listener-with-A-key",
    "off-B-domain-via-B-listener-with-A-key",
    "off-B-domain-via-A-listener",
    "off-B-domain-by-uuid-via-A-listener",
    "off-B-server-by-derived-name-via-A-listener",
    "off-guessed-B-member-via-A-listener",
    "off-B-domain-to-B-port-on-A-group-with-A-key",
    "list-to-B-port-on-A-group-with-A-key",
]


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_member_cannot_list_or_fence_other_tenants_guests(lab, attempt):
    a, b = lab.a, lab.b
    op, domain, via, key, group, port, expected = _attempts(a, b)[attempt]
    answer = a.fence(a.member_ns(0), op, domain=domain, via=via, key=key, group=group, port=port)
    assert answer.rc != 0 and expected in answer.said, f"{attempt}: {answer}"
    assert not iso.listing(answer), answer
    # Every guest of B is still on, as B's own listener tells B's member.
    for m in b.members:
        assert b.fence(b.member_ns(0), "status", domain=m.domain) == Answer(0, "Status: ON"), m.domain


def test_listener_hears_only_its_own_bridge(lab):
    """fence_virtd binds 0.0.0.0:PORT, and with IP_MULTICAST_ALL (Linux default) its socket
    also gets datagrams for a group another daemon joined on another bridge. Here A's
    member sends to B's port on A's own group, signed with B's key (which A's members do
    not have: it only shows whether the datagram reaches B's daemon at all)."""
    a, b = lab.a, lab.b
    control = b.fence(b.member_ns(0), "list")
    assert iso.listing(control) == b.member_domains, control
    before = input_drops(b.port)
    answer = a.fence(a.member_ns(0), "list", via=b, key=b, group=a.group, port=b.port)
    assert answer.rc != 0 and TIMED_OUT in answer.said, (
        f"B's fence_virtd answered a request from A's segment (and connected back into it): {answer}"
    )
    assert input_drops(b.port) > before, "no INPUT rule dropped the datagram for B's listener port"


# ---------------------------------------------------------------------------------------
# The host's own addresses


def _neighbour(ns: str, address) -> str:
    return iso.sh("ip", "-n", ns, "neigh", "show", str(address)).stdout.strip()


def test_member_reaches_the_host_only_on_its_own_tenants_address(lab):
    a, b = lab.a, lab.b
    ns = a.member_ns(0)
    assert iso.tcp_probe(ns, a.topo.host_address, 9) in ("refused", "connected")
    assert iso.tcp_probe(ns, b.topo.host_address, 9) == "timeout", "A's member reaches the host on B's address"
    # On-link (no gateway), the member asks for B's host address by ARP itself.
    iso.sh("ip", "-n", ns, "route", "add", f"{b.topo.host_address}/32", "dev", "eth0")
    try:
        iso.tcp_probe(ns, b.topo.host_address, 9, timeout=3)
        iso.tcp_probe(ns, a.topo.host_address, 9, timeout=3)
        bridge_mac = iso.link_info(a.bridge)["address"]
        assert f"lladdr {bridge_mac}" in _neighbour(ns, a.topo.host_address)
        assert "lladdr" not in _neighbour(ns, b.topo.host_address), (
            f"the host answered ARP for B's address on A's bridge: {_neighbour(ns, b.topo.host_address)}"
        )
    finally:
        iso.sh("ip", "-n", ns, "route", "del", f"{b.topo.host_address}/32", "dev", "eth0")


def test_network_script_refuses_a_cidr_another_tenant_has(lab):
    """Two segments with one CIDR would share the host's routes: a third tenant C with A's
    CIDR would get its fence_virtd's connections back to C's members sent into A's
    segment. The network script must refuse C before making anything."""
    a = lab.a
    with lab.other_network("c", a.cidr) as (topo, script):
        with pytest.raises(RuntimeError, match=rf"{topo.host_address}/{a.cidr.prefixlen} overlaps {a.cidr} on {a.bridge}"):
            iso.run_script(script.create)
        assert topo.bridge not in iso.links()
        assert not [line for line in iso.iptables_rules() if host.forward_chain(topo) in line.split()]
    # Control: the same tenant with a CIDR of its own is made.
    with lab.other_network("c", lab.free_cidr()) as (topo, script):
        iso.run_script(script.create)
        assert iso.link_info(topo.names.vlan_interface(lab.trunk)).get("master") == topo.bridge
    assert iso.listing(a.fence(a.member_ns(0), "list")) == a.member_domains


# ---------------------------------------------------------------------------------------
# Eavesdropping


def test_member_captures_none_of_other_tenants_traffic(lab):
    a, b = lab.a, lab.b
    marker_a = f"G2ISO-A-{secrets.token_hex(6)}"
    marker_b = f"G2ISO-B-{secrets.token_hex(6)}"
    b1, b2, b3 = (b.member_ns(i) for i in range(3))
    nowhere = b.cidr.network_address + 99  # no one's: its frames are flooded
    b_macs = b.macs()
    listeners = [a.member_ns(0), a.server_ns, b.member_ns(3)]
    with iso.captures(lab, *listeners) as caps:
        for ns in (b1, b2):
            iso.sh("ip", "-n", ns, "neigh", "flush", "all")  # fresh ARP broadcasts
        assert b.fence(b1, "status", domain=b.members[1].domain) == Answer(0, "Status: ON")
        assert b.fence(b1, "reboot", domain=b.members[2].domain).rc == 0
        assert iso.nbdinfo_size(b1, b.export_uri).rc == 0
        iso.sh("ip", "-n", b1, "neigh", "replace", str(nowhere), "lladdr", "02:00:5e:10:00:99", "dev", "eth0", "nud", "permanent")
        broadcast = b.cidr.broadcast_address
        iso.send_udp(b1, marker_b, 9, broadcast, b.members[1].address, nowhere, b.group)
        iso.send_udp(b3, marker_b, b.port, b.group)
        iso.send_udp(a.member_ns(1), marker_a, 9, a.cidr.broadcast_address)
        time.sleep(1)
    a_caps = [caps[a.member_ns(0)], caps[a.server_ns]]
    control = caps[b.member_ns(3)]
    for cap in a_caps:
        assert marker_a.encode() in cap.raw, f"the capture in {cap.ns} saw nothing of its own tenant"
        leaks = iso.traces_of(cap, b, b_macs, [marker_b])
        assert not leaks, f"{cap.ns} captured B's traffic:\n" + "\n".join(leaks[:20])
    # Control: the same capture in B's idle member sees B's traffic, the same way.
    seen = iso.traces_of(control, b, b_macs, [marker_b])
    assert f"marker {marker_b!r} in the raw capture" in seen, control.text[-3000:]
    assert any(iso.link_info("eth0", b1)["address"] in line for line in seen)
    assert marker_a.encode() not in control.raw


# ---------------------------------------------------------------------------------------
# Data


def test_other_tenants_data_is_intact(lab):
    for t in lab.tenants.values():
        assert iso.sha256_file(t.export_file) == t.export_sha256
        assert iso.export_sha256(t.member_ns(0), t.export_uri) == t.export_sha256


# ---------------------------------------------------------------------------------------
# Destroying one tenant


def test_destroying_one_tenant_leaves_the_other_untouched():
    _preflight()
    with iso.lab() as lab:
        a, b = lab.a, lab.b
        b_rules = [line for line in iso.iptables_rules() if _names(line, b)]
        b_pid = b.fence_pid
        b_bridge_mac = iso.link_info(b.bridge)["address"]
        said = "\n".join(lab.destroy_tenant_host_side(a))

        assert f"stopped fence_virtd {a.fence_pid}" in said and f"removed {a.bridge}" in said, said
        assert {a.bridge, a.vlan_if}.isdisjoint(iso.links())
        assert not iso.pid_alive(a.fence_pid) and not a.host_dir.exists()
        assert not [line for line in iso.iptables_rules() if _names(line, a)]

        assert iso.link_info(b.bridge)["address"] == b_bridge_mac and "UP" in iso.link_info(b.bridge)["flags"]
        assert iso.link_info(b.vlan_if).get("master") == b.bridge
        assert [line for line in iso.iptables_rules() if _names(line, b)] == b_rules
        assert iso.pid_alive(b_pid) and b.conf_path in iso.cmdline(b_pid)
        assert (b.host_dir / "fence_virtd.pid").read_text().strip() == str(b_pid)
        b1 = b.member_ns(0)
        assert b.fence(b1, "status", domain=b.members[1].domain) == Answer(0, "Status: ON")
        assert iso.listing(b.fence(b1, "list")) == b.member_domains
        assert iso.tcp_probe(b1, b.topo.host_address, 9) in ("refused", "connected")
        assert iso.export_sha256(b1, b.export_uri) == b.export_sha256
        # A's former members, now on no bridge, reach nothing of B.
        assert iso.tcp_probe(a.member_ns(0), b.export.server_address, b.export.port) not in ("connected", "refused")
