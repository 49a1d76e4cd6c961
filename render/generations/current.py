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
from spec.topology import FilesystemPlan, Topology, VolumeGroupPlan

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


def _stage_script(step: str, topo: Topology, stage_xml: str, wait_for: list[str], timeout: int) -> NodeScript:
    return node_script(
        step,
        "cib_stage.sh",
        "cib_stage_delete.sh",
        cib_tool=cib_tool(),
        stage=stage_xml,
        members=len(topo.members),
        wait_for=wait_for,
        timeout=timeout,
    )


@dataclass(frozen=True)
class Current:
    name: str = "current"
    membership_reads_authkey: bool = True

    def membership(self, topo: Topology) -> NodeScript:
        return node_script(
            "corosync", "corosync_member.sh", "corosync_member_delete.sh", corosync_conf=corosync_conf(topo)
        )

    def locking(self, topo: Topology, devices: tuple[str, ...]) -> NodeScript:
        return node_script("lvmlockd", "lvmlockd_member.sh", "lvmlockd_member_delete.sh", devices=devices)

    def cluster_ready(self, topo: Topology) -> NodeScript:
        locking = pacemaker.clone_id(pacemaker.LOCKING_GROUP)
        fence = [pacemaker.fence_id(m) for m in topo.members] if pacemaker.fencing_enabled(topo) else []
        return _stage_script(
            "cluster-ready",
            topo,
            stage(topo, [*fence, locking], properties=True),
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
        return _stage_script(
            f"mount-{fs.fs_name}", topo, stage(topo, [clone]), [f"{clone} {len(topo.members)}"], MOUNT_TIMEOUT
        )

    def mount_per_member(self, topo: Topology, fs: FilesystemPlan) -> Optional[NodeScript]:
        return None

    def management(self, topo: Topology) -> Optional[NodeScript]:
        if topo.spec.management != "pcsd":
            return None
        return node_script("pcsd", "service.sh", "service_delete.sh", service="pcsd", permissive_domain="")


CURRENT = Current()
