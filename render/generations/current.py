"""Today: corosync 3 + pacemaker (fencing, dlm + lvmlockd, LVM-activate and Filesystem
clones, all from render/pacemaker.py), shared VGs through lvmlockd, pcsd."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Iterable, Optional

from lxml import etree

from render import pacemaker
from render.corosync import corosync_conf
from render.generations.base import lv_lines
from render.script import NodeScript, node_script
from spec.topology import FilesystemPlan, Member, Topology, VolumeGroupPlan

# Guests under software emulation start a GFS2 stack slowly; these are upper bounds.
CLUSTER_TIMEOUT = 600
MOUNT_TIMEOUT = 600


def cib_tool() -> str:
    return resources.files("render.scripts").joinpath("cib.py").read_text()


def _owner(constraint: etree._Element) -> str:
    """The resource a constraint belongs to: the one it places or starts later."""
    return constraint.get("then") or constraint.get("rsc")


def stage(topo: Topology, resource_ids: Iterable[str], properties: bool = False) -> str:
    """The part of the pacemaker configuration for some top-level resources: them, the
    constraints that place or order them, and (once) the cluster properties."""
    config = pacemaker.cib_configuration(topo)
    ids = set(resource_ids)
    out = etree.Element("stage")
    crm_config = etree.SubElement(out, "crm_config")
    if properties:
        for nvpair in config.iterfind("crm_config/cluster_property_set/nvpair"):
            etree.SubElement(crm_config, "nvpair", name=nvpair.get("name"), value=nvpair.get("value"))
    res = etree.SubElement(out, "resources")
    res.extend(e for e in config.find("resources") if e.get("id") in ids)
    cons = etree.SubElement(out, "constraints")
    cons.extend(c for c in config.find("constraints") if _owner(c) in ids)
    missing = ids - {e.get("id") for e in res}
    if missing:
        raise ValueError(f"no such pacemaker resources: {sorted(missing)}")
    return etree.tostring(out, encoding="unicode")


def _stage_script(step: str, stage_xml: str, members: int, wait_for: list[str], timeout: int, **more) -> NodeScript:
    """MEMBERS: how many members must be online before the stage is applied."""
    return node_script(
        step,
        "cib_stage.sh",
        "cib_stage_delete.sh",
        cib_tool=cib_tool(),
        stage=stage_xml,
        members=members,
        wait_for=wait_for,
        timeout=timeout,
        **more,
    )


@dataclass(frozen=True)
class Current:
    name: str = "current"
    locking_before_join: bool = True

    def roster(self, topo: Topology) -> Optional[NodeScript]:
        return node_script(
            "corosync",
            "corosync_roster.sh",
            "corosync_roster_delete.sh",
            corosync_conf=corosync_conf(topo),
            nodeids=[m.nodeid for m in topo.members],
            two_node=topo.two_node,
        )

    def membership(self, topo: Topology) -> NodeScript:
        return node_script("cluster-join", "corosync_member.sh", "corosync_member_delete.sh")

    def fence_device(self, topo: Topology, member: Member) -> Optional[NodeScript]:
        if not pacemaker.fencing_enabled(topo):
            return None
        # Only the first member need be online: the device exists before its member
        # joins, and the first member's own device has nowhere to run until a second.
        # Removed with its member, after the member has left: pacemaker forgets the node too.
        return _stage_script(
            f"fence-{member.name}", stage(topo, [pacemaker.fence_id(member)]), 1, [], CLUSTER_TIMEOUT,
            forget_node=member.name,
        )

    def locking(self, topo: Topology, devices: tuple[str, ...]) -> NodeScript:
        return node_script("lvmlockd", "lvmlockd_member.sh", "lvmlockd_member_delete.sh", devices=devices)

    def cluster_ready(self, topo: Topology) -> NodeScript:
        locking = pacemaker.clone_id(pacemaker.LOCKING_GROUP)
        return _stage_script(
            "cluster-ready",
            stage(topo, [locking], properties=True),
            len(topo.members),
            [f"{locking} {len(topo.members)}"],
            CLUSTER_TIMEOUT,
        )

    def volume_group(self, topo: Topology, vg: VolumeGroupPlan, devices: tuple[str, ...]) -> NodeScript:
        clone = pacemaker.clone_id(pacemaker.lvm_id(vg))
        return node_script(
            f"vg-{vg.name}",
            "lvm_shared_vg.sh",
            "lvm_shared_vg_delete.sh",
            cib_tool=cib_tool(),
            stage=stage(topo, [clone]),
            clone=clone,
            vg=vg.name,
            devices=devices,
            lvs=lv_lines(vg),
            members=len(topo.members),
            timeout=CLUSTER_TIMEOUT,
        )

    def mount_once(self, topo: Topology, fs: FilesystemPlan) -> Optional[NodeScript]:
        clone = pacemaker.clone_id(pacemaker.fs_id(fs))
        n = len(topo.members)
        return _stage_script(f"mount-{fs.fs_name}", stage(topo, [clone]), n, [f"{clone} {n}"], MOUNT_TIMEOUT)

    def mount_per_member(self, topo: Topology, fs: FilesystemPlan) -> Optional[NodeScript]:
        return None

    def management(self, topo: Topology) -> Optional[NodeScript]:
        if topo.spec.management != "pcsd":
            return None
        return node_script("pcsd", "service.sh", "service_delete.sh", service="pcsd", permissive_domain="")


CURRENT = Current()
