"""Hypervisor-side scripts of one tenant: its VLAN bridge and its fence_virtd."""

from __future__ import annotations

from render.fence_virt import fence_virt_conf
from render.script import NodeScript, node_script
from spec.model import Hypervisor
from spec.topology import Topology


def forward_chain(topo: Topology) -> str:
    """iptables chain of this tenant on the hypervisor (max 28 characters)."""
    return f"G2-{topo.spec.network.vlan_id}"


def vlan_network(topo: Topology, hv: Hypervisor) -> NodeScript:
    net = topo.spec.network
    return node_script(
        "tenant-network",
        "host_vlan_network.sh",
        "host_vlan_network_delete.sh",
        trunk=hv.trunk,
        vlan_id=net.vlan_id,
        bridge=topo.bridge,
        host_cidr=f"{topo.host_address}/{net.cidr.prefixlen}",
        chain=forward_chain(topo),
    )


def local_libvirt_uri(hv: Hypervisor) -> str:
    """The hypervisor's own URI as seen on the hypervisor (fence_virtd runs there)."""
    return f"{hv.driver}:///system"


def fence_listener(topo: Topology, hv: Hypervisor) -> NodeScript:
    """fence_virtd for this tenant; the key arrives base64 on stdin."""
    directory = topo.names.host_dir
    conf = fence_virt_conf(topo, f"{directory}/fence_xvm.key", topo.bridge, local_libvirt_uri(hv))
    return node_script(
        "fence-listener",
        "host_fence_listener.sh",
        "host_fence_listener_delete.sh",
        dir=directory,
        conf=conf,
        bridge=topo.bridge,
        port=topo.fencing.port,
        vlan_id=topo.spec.network.vlan_id,
    )


def xen_cpu_cap(hv: Hypervisor, domain: str, cap_percent: int) -> NodeScript:
    return node_script(
        "cpu-cap", "host_xen_cap.sh", "host_xen_cap_delete.sh", uri=local_libvirt_uri(hv), domain=domain, cap=cap_percent
    )


# Policy-rule priority of the lab guard; its block rule takes the next one. Ahead of the
# main table (32766), so a lab address is decided before the default route is looked at.
LAB_GUARD_PRIORITY = 4242


def lab_guard(topo: Topology) -> NodeScript:
    """No packet for the tenant's CIDR leaves by the default route, bridge or not: the CIDR
    takes only routes at least as specific as itself (the bridge's), else is unreachable.
    Refuses a CIDR holding the hypervisor's resolver, addresses or gateways."""
    cidr = topo.spec.network.cidr
    return node_script(
        "lab-guard",
        "host_lab_guard.sh",
        "host_lab_guard_delete.sh",
        cidr=str(cidr),
        bridge=topo.bridge,
        suppress_prefixlength=cidr.prefixlen - 1,
        lookup_priority=LAB_GUARD_PRIORITY,
        block_priority=LAB_GUARD_PRIORITY + 1,
    )
