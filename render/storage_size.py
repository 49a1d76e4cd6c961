"""Growing the shared storage of a running cluster: an export's sizeGib and its LVs raised
in the stack, then `pulumi up`.

Three kinds of step, each a no-op when the sizes already match (so a fresh build runs
them once, quickly, and a second up never):
- on the hypervisor, per data disk of a storage server: the volume grown in place
  (virsh blockresize: the server guest sees the new size at once);
- on each member in turn (the first member first): every import at its export's size,
  then on the first member the PVs and LVs grown, on the others their LVs reloaded;
- per file system, on the first member: gfs2_grow, online.
Sizes only grow: a smaller one stops the step that sees it, before it changes anything.
"""

from __future__ import annotations

from typing import Optional

from render import pacemaker
from render.exports import protocol
from render.generations.current import CLUSTER_TIMEOUT, cib_tool
from render.host import local_libvirt_uri
from render.script import NodeScript, node_script
from spec.topology import DataDisk, ExportPlan, FilesystemPlan, Guest, Member, Topology

GIB = 1024**3

LEGACY_REFUSAL = (
    "growing the shared storage is built for the current generation (lvmlockd, pacemaker); "
    "with clvmd and cman grow it by hand (README, Changing a running cluster)"
)


def _refusal(topo: Topology, export: ExportPlan) -> str:
    """Why this export cannot grow in place, or "" when it can."""
    if topo.spec.generation != "current":
        return LEGACY_REFUSAL
    how, why = protocol(export.protocol).resize(topo, export)
    return why if how == "refuse" else ""


def data_disk(topo: Topology, guest: Guest, disk: DataDisk) -> NodeScript:
    """On the server guest's hypervisor: its data disk for DISK at the export's size."""
    export = next(e for e in topo.exports if e.name == disk.export)
    return node_script(
        f"disk-size-{disk.export}",
        "host_data_disk_size.sh",
        "nothing.sh",
        uri=local_libvirt_uri(guest.hypervisor),
        domain=guest.domain,
        volume=topo.names.data_volume(guest.name, disk.export),
        size_bytes=disk.size_gib * GIB,
        size_key=export.size_key,
        refusal=_refusal(topo, export),
    )


def _device_lines(topo: Topology, member: Member) -> list[str]:
    """DEVICE WANT_BYTES HOW ARG KEY per export this stack sized (an external server's
    device is its owner's to grow)."""
    lines = []
    for e in topo.exports:
        if e.size_gib is None:
            continue
        proto = protocol(e.protocol)
        how, arg = proto.resize(topo, e)
        if how == "refuse":
            continue  # the disk's own step refuses a growth first
        lines.append(f"{proto.device(topo, e, member)} {e.size_gib * GIB} {how} {arg} {e.size_key}")
    return lines


def member_devices(topo: Topology, member: Member) -> Optional[NodeScript]:
    """On one member, after the member before it: its imports at their exports' sizes;
    on the first member then the PVs and LVs grown, on the others the LVs reloaded.
    None in the legacy generation (its disk steps refuse a growth)."""
    if topo.spec.generation != "current":
        return None
    vgs_devices = {e.name: protocol(e.protocol).device(topo, e, member) for e in topo.exports}
    clones = [pacemaker.clone_id(pacemaker.lvm_id(vg)) for vg in topo.volume_groups]
    clones += [pacemaker.clone_id(pacemaker.fs_id(fs)) for fs in topo.filesystems]
    return node_script(
        f"storage-size-{member.name}",
        "storage_size.sh",
        "nothing.sh",
        cib_tool=cib_tool(),
        devices=_device_lines(topo, member),
        first=member.name == topo.first_member.name,
        pvs=[vgs_devices[name] for vg in topo.volume_groups for name in vg.exports],
        lvs=[f"{vg.name} {lv.name} {lv.size} {lv.size_key}" for vg in topo.volume_groups for lv in vg.logical_volumes],
        clones=clones,
        timeout=CLUSTER_TIMEOUT,
    )


def filesystem(topo: Topology, fs: FilesystemPlan) -> Optional[NodeScript]:
    """On the first member, after every member's step: the file system over its whole LV.
    The sizes are in the script so that it runs again when one changes."""
    if topo.spec.generation != "current":
        return None
    vg = next(v for v in topo.volume_groups if v.name == fs.vg)
    return node_script(
        f"grow-{fs.fs_name}",
        "gfs2_grow.sh",
        "nothing.sh",
        device=fs.device,
        mount_point=fs.mount_point,
        sizes=[f"{e.name} {e.size_gib}" for e in topo.exports if e.name in vg.exports]
        + [f"{lv.name} {lv.size}" for lv in vg.logical_volumes],
        timeout=CLUSTER_TIMEOUT,
    )
