"""What each cluster generation provides; components/ wires these steps into resources.

Per-node steps run on every node in parallel; cluster-wide steps run once, on the first
member, after what they need on every node.
"""

from __future__ import annotations

from typing import Optional, Protocol

from render.script import NodeScript
from spec.topology import FilesystemPlan, Member, Topology, VolumeGroupPlan


class Generation(Protocol):
    name: str
    # Whether a member's LVM locking is set up before it joins (lvm.conf only), so that
    # it joins ready for the cluster's resources; clvmd needs the membership first.
    locking_before_join: bool

    def roster(self, topo: Topology) -> Optional[NodeScript]:
        """Per cluster node, before any node joins: the cluster config, with the
        authkey (base64) on stdin; None where the membership step writes its own."""
        ...

    def membership(self, topo: Topology) -> NodeScript:
        """Per cluster node: the cluster stack started (cman: its config first)."""
        ...

    def fence_device(self, topo: Topology, member: Member) -> Optional[NodeScript]:
        """Once per member, on the first member, before that member joins: its fence
        device; None where the cluster config carries fencing."""
        ...

    def locking(self, topo: Topology, devices: tuple[str, ...]) -> NodeScript:
        """Per member: clustered LVM locking (clvmd, or lvm.conf for lvmlockd)."""
        ...

    def cluster_ready(self, topo: Topology) -> NodeScript:
        """Once: all nodes joined; lock managers running everywhere."""
        ...

    def volume_group(self, topo: Topology, vg: VolumeGroupPlan, devices: tuple[str, ...]) -> NodeScript:
        """Once: the clustered VG and its LVs, active on every member."""
        ...

    def mount_once(self, topo: Topology, fs: FilesystemPlan) -> Optional[NodeScript]:
        """Once: mounts managed by the cluster (pacemaker), or None."""
        ...

    def mount_per_member(self, topo: Topology, fs: FilesystemPlan) -> Optional[NodeScript]:
        """Per member: a mount the member owns (fstab), or None."""
        ...

    def management(self, topo: Topology) -> Optional[NodeScript]:
        """Per member: the management agent, or None."""
        ...


def lv_lines(vg: VolumeGroupPlan) -> list[str]:
    """The VG's logical volumes as the VG scripts read them: one "NAME SIZE" per line."""
    return [f"{lv.name} {lv.size}" for lv in vg.logical_volumes]
