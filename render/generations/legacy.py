"""RHEL/CentOS 5: cman with cluster.conf (fencing in it), clvmd, fstab mounts, ricci."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from render.cman import cluster_conf
from render.generations.base import lv_lines
from render.script import NodeScript, node_script
from spec.topology import FilesystemPlan, Member, Topology, VolumeGroupPlan

QUORUM_TIMEOUT = 300


@dataclass(frozen=True)
class Legacy:
    name: str = "legacy"
    locking_before_join: bool = False

    def roster(self, topo: Topology) -> Optional[NodeScript]:
        return None

    def membership(self, topo: Topology) -> NodeScript:
        return node_script("cman", "cman_member.sh", "cman_member_delete.sh", cluster_conf=cluster_conf(topo))

    def fence_device(self, topo: Topology, member: Member) -> Optional[NodeScript]:
        return None

    def locking(self, topo: Topology, devices: tuple[str, ...]) -> NodeScript:
        return node_script("clvmd", "clvmd_member.sh", "clvmd_member_delete.sh")

    def cluster_ready(self, topo: Topology) -> NodeScript:
        return node_script(
            "cluster-ready",
            "cman_quorum.sh",
            "cman_quorum_delete.sh",
            nodes=len(topo.cluster_nodes),
            timeout=QUORUM_TIMEOUT,
        )

    def volume_group(self, topo: Topology, vg: VolumeGroupPlan, devices: tuple[str, ...]) -> NodeScript:
        return node_script(
            f"vg-{vg.name}",
            "lvm_clustered_vg.sh",
            "lvm_clustered_vg_delete.sh",
            vg=vg.name,
            devices=devices,
            lvs=lv_lines(vg),
        )

    def mount_once(self, topo: Topology, fs: FilesystemPlan) -> Optional[NodeScript]:
        return None

    def mount_per_member(self, topo: Topology, fs: FilesystemPlan) -> Optional[NodeScript]:
        return node_script(
            f"mount-{fs.fs_name}",
            "gfs2_mount.sh",
            "gfs2_mount_delete.sh",
            device=fs.device,
            mount_point=fs.mount_point,
            options=",".join(fs.mount_options),
        )

    def management(self, topo: Topology) -> Optional[NodeScript]:
        if topo.spec.management != "luci":
            return None
        # The seed: ricci fails under enforcing SELinux; only its domain goes permissive.
        permissive = "ricci_t" if topo.selinux == "enforcing" else ""
        return node_script("ricci", "service.sh", "service_delete.sh", service="ricci", permissive_domain=permissive)


LEGACY = Legacy()
