"""Node scripts every guest gets, whatever the cluster generation."""

from __future__ import annotations

from render.script import NodeScript, node_script
from spec.topology import Topology


def hosts_lines(topo: Topology) -> list[str]:
    """Cluster nodes and export servers by name, as corosync/cman and the imports use them."""
    return [f"{g.address} {g.name}" for g in topo.guests]


def base(topo: Topology) -> NodeScript:
    selinux = topo.selinux if topo.spec.image.has_selinux else "none"
    return node_script("base", "guest_base.sh", "guest_base_delete.sh", hosts=hosts_lines(topo), selinux=selinux)


def fence_key(topo: Topology) -> NodeScript:
    """Writes the key from stdin (base64) where fence_xvm looks for it."""
    return node_script("fence-key", "fence_key.sh", "fence_key_delete.sh", key_path=topo.fencing.member_key_path)


def ready() -> NodeScript:
    return node_script("ready", "guest_ready.sh", "nothing.sh")


def cluster_status() -> NodeScript:
    return node_script("status", "cluster_status.sh", "nothing.sh")
