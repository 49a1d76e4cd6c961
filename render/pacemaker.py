"""Pacemaker configuration (CIB XML) for the current generation: fencing, the DLM and
lvmlockd, one shared LVM activation per volume group and one GFS2 mount per file system,
every one of them cloned to all members (the RHEL 9 GFS2 procedure, as CIB XML).

Start order: locking-clone (dlm + lvmlockd), then lvm-VG-clone, then fs-FS-clone; each
clone also runs only where the one before it runs. IDs are derived from the spec's
names with a prefix per kind, so a volume group called "locking" cannot collide with
the locking group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from lxml import etree

from spec.names import fs_resource_id, lvm_resource_id, xml_id
from spec.topology import FilesystemPlan, Member, Topology, VolumeGroupPlan

# The oldest schema that has everything used here; pacemaker 2.0 and later accept it.
SCHEMA = "pacemaker-3.0"
# In a two-node cluster both members may try to fence each other at once; delaying the
# device that fences the first member lets that member win the race.
TWO_NODE_FENCE_DELAY = "5s"
LOCKING_GROUP = "locking"


@dataclass(frozen=True)
class Op:
    name: str
    timeout: str
    interval: str = "0s"
    fences_on_failure: bool = False


@dataclass(frozen=True)
class Agent:
    standard: str
    provider: Optional[str]
    type: str
    # Timeouts as advised by the agent's metadata: a CIB pushed with cibadmin gets none
    # of the defaults pcs would copy in, and pacemaker's own default is only 20s.
    ops: tuple[Op, ...]


CONTROLD = Agent(
    "ocf",
    "pacemaker",
    "controld",
    (
        Op("start", timeout="90s"),
        Op("stop", timeout="100s"),
        Op("monitor", timeout="20s", interval="30s", fences_on_failure=True),
    ),
)
LVMLOCKD = Agent(
    "ocf",
    "heartbeat",
    "lvmlockd",
    (
        Op("start", timeout="90s"),
        Op("stop", timeout="90s"),
        Op("monitor", timeout="90s", interval="30s", fences_on_failure=True),
    ),
)
LVM_ACTIVATE = Agent(
    "ocf",
    "heartbeat",
    "LVM-activate",
    (Op("start", timeout="90s"), Op("stop", timeout="90s"), Op("monitor", timeout="90s", interval="30s")),
)
FILESYSTEM = Agent(
    "ocf",
    "heartbeat",
    "Filesystem",
    (
        Op("start", timeout="60s"),
        Op("stop", timeout="60s"),
        Op("monitor", timeout="40s", interval="10s", fences_on_failure=True),
    ),
)


def _stonith_agent(type_: str) -> Agent:
    return Agent("stonith", None, type_, (Op("monitor", timeout="20s", interval="60s"),))


# --- fencing: one function per fencing method, giving each device's parameters -------


def _fence_xvm_params(topo: Topology, member: Member) -> dict[str, str]:
    f = topo.fencing
    return {
        "key_file": f.member_key_path,
        "multicast_address": str(f.multicast_address),
        "ipport": str(f.port),
    }


# fence_virsh is refused in spec/rules.py until a step installs its SSH key.
FENCE_DEVICE_PARAMS: Mapping[str, Callable[[Topology, Member], dict[str, str]]] = {
    "fence_xvm": _fence_xvm_params,
}


def fencing_enabled(topo: Topology) -> bool:
    return topo.fencing.method in FENCE_DEVICE_PARAMS


# --- names ---------------------------------------------------------------------------


def fence_id(member: Member) -> str:
    return xml_id("fence", member.name)


def lvm_id(vg: VolumeGroupPlan) -> str:
    return lvm_resource_id(vg.name)


def fs_id(fs: FilesystemPlan) -> str:
    return fs_resource_id(fs.fs_name)


def clone_id(rsc_id: str) -> str:
    return f"{rsc_id}-clone"


# --- documents -----------------------------------------------------------------------


def cib_configuration(topo: Topology) -> etree._Element:
    """The <configuration> section: what `cibadmin --replace --scope configuration` takes."""
    config = etree.Element("configuration")
    config.append(_crm_config(topo))
    config.append(_nodes(topo))
    config.append(_resources(topo))
    config.append(_constraints(topo))
    # IDs never collide: spec/rules.py pacemaker_ids refuses names that would.
    return config


def full_cib(topo: Topology) -> str:
    """A whole CIB (configuration and an empty status) for crm_verify -x or a new cluster."""
    cib = etree.Element("cib", {"validate-with": SCHEMA, "admin_epoch": "0", "epoch": "1", "num_updates": "0"})
    cib.append(cib_configuration(topo))
    etree.SubElement(cib, "status")
    return etree.tostring(cib, pretty_print=True, encoding="unicode")


def _crm_config(topo: Topology) -> etree._Element:
    crm_config = etree.Element("crm_config")
    props = {
        "stonith-enabled": "true" if fencing_enabled(topo) else "false",
        # GFS2 cannot be stopped without quorum (the DLM needs it): trying would end in
        # every member being fenced, so a member that loses quorum keeps what it runs.
        "no-quorum-policy": "freeze",
        "cluster-name": topo.cluster_name,
    }
    crm_config.append(_nvpairs("cluster_property_set", "cib-bootstrap-options", props))
    return crm_config


def _nodes(topo: Topology) -> etree._Element:
    nodes = etree.Element("nodes")
    for m in topo.members:
        # On a corosync cluster the pacemaker node id is the corosync nodeid.
        etree.SubElement(nodes, "node", id=str(m.nodeid), uname=m.name)
    return nodes


def _resources(topo: Topology) -> etree._Element:
    resources = etree.Element("resources")
    resources.extend(_fence_devices(topo))
    resources.append(_clone(_locking_group(topo)))
    resources.extend(_clone(_lvm_activate(topo, vg)) for vg in topo.volume_groups)
    resources.extend(_clone(_filesystem(topo, fs)) for fs in topo.filesystems)
    return resources


def _constraints(topo: Topology) -> etree._Element:
    constraints = etree.Element("constraints")
    constraints.extend(_fence_device_placement(topo))
    locking = clone_id(LOCKING_GROUP)
    for vg in topo.volume_groups:
        constraints.extend(_start_after_and_with(first=locking, then=clone_id(lvm_id(vg))))
    for fs in topo.filesystems:
        vg = next(v for v in topo.volume_groups if v.name == fs.vg)
        constraints.extend(_start_after_and_with(first=clone_id(lvm_id(vg)), then=clone_id(fs_id(fs))))
    return constraints


# --- resources -----------------------------------------------------------------------


def _fence_devices(topo: Topology) -> list[etree._Element]:
    params_of = FENCE_DEVICE_PARAMS.get(topo.fencing.method)
    if params_of is None:
        return []
    return [_fence_device(topo, m, params_of(topo, m)) for m in topo.members]


def _fence_device(topo: Topology, member: Member, params: dict[str, str]) -> etree._Element:
    # Pacemaker passes the mapped domain as the agent's host argument (port): the node
    # name and the libvirt domain name differ.
    targets = {"pcmk_host_list": member.name, "pcmk_host_map": f"{member.name}:{member.domain}"}
    if topo.two_node and member == topo.first_member:
        targets["pcmk_delay_base"] = TWO_NODE_FENCE_DELAY
    return _primitive(topo, fence_id(member), _stonith_agent(topo.fencing.method), {**params, **targets})


def _locking_group(topo: Topology) -> etree._Element:
    group = etree.Element("group", id=LOCKING_GROUP)
    # controld picks its daemon from the resource ID: an ID with "dlm" (and without
    # "gfs") starts dlm_controld.
    dlm_params = {} if fencing_enabled(topo) else {"allow_stonith_disabled": "true"}
    group.append(_primitive(topo, "dlm", CONTROLD, dlm_params))
    group.append(_primitive(topo, "lvmlockd", LVMLOCKD, {}))
    return group


def _lvm_activate(topo: Topology, vg: VolumeGroupPlan) -> etree._Element:
    params = {"vgname": vg.name, "vg_access_mode": "lvmlockd", "activation_mode": "shared"}
    return _primitive(topo, lvm_id(vg), LVM_ACTIVATE, params)


def _filesystem(topo: Topology, fs: FilesystemPlan) -> etree._Element:
    params = {
        "device": fs.device,
        "directory": fs.mount_point,
        "fstype": "gfs2",
        "options": ",".join(fs.mount_options),
    }
    return _primitive(topo, fs_id(fs), FILESYSTEM, params)


def _primitive(topo: Topology, rsc_id: str, agent: Agent, params: Mapping[str, str]) -> etree._Element:
    attrs = {"id": rsc_id, "class": agent.standard}
    if agent.provider:
        attrs["provider"] = agent.provider
    attrs["type"] = agent.type
    primitive = etree.Element("primitive", attrs)
    if params:
        primitive.append(_nvpairs("instance_attributes", f"{rsc_id}-instance_attributes", params))
    operations = etree.SubElement(primitive, "operations")
    operations.extend(_op(topo, rsc_id, op) for op in agent.ops)
    return primitive


def _op(topo: Topology, rsc_id: str, op: Op) -> etree._Element:
    attrs = {"id": xml_id(rsc_id, op.name, "interval", op.interval), "name": op.name}
    attrs.update(interval=op.interval, timeout=op.timeout)
    # Without fencing pacemaker rejects on-fail=fence (crm_verify reports an error and it
    # falls back to stop), so the monitor keeps its default there.
    if op.fences_on_failure and fencing_enabled(topo):
        attrs["on-fail"] = "fence"
    return etree.Element("op", attrs)


def _clone(child: etree._Element) -> etree._Element:
    clone = etree.Element("clone", id=clone_id(child.get("id")))
    clone.append(child)
    # Each member's instance waits only for the instances on the same member.
    clone.append(_nvpairs("meta_attributes", f"{clone.get('id')}-meta_attributes", {"interleave": "true"}))
    return clone


def _nvpairs(tag: str, set_id: str, values: Mapping[str, str]) -> etree._Element:
    nvset = etree.Element(tag, id=set_id)
    for name, value in values.items():
        etree.SubElement(nvset, "nvpair", id=xml_id(set_id, name), name=name, value=value)
    return nvset


# --- constraints ---------------------------------------------------------------------


def _fence_device_placement(topo: Topology) -> list[etree._Element]:
    if not fencing_enabled(topo):
        return []
    # A member never runs the device that fences it: it could not fence itself when hung.
    return [
        etree.Element(
            "rsc_location",
            id=xml_id("location", fence_id(m), "avoids", m.name),
            rsc=fence_id(m),
            node=m.name,
            score="-INFINITY",
        )
        for m in topo.members
    ]


def _start_after_and_with(first: str, then: str) -> list[etree._Element]:
    """then starts after first and runs only where first runs."""
    order = etree.Element(
        "rsc_order",
        {
            "id": xml_id("order", first, "then", then),
            "first": first,
            "first-action": "start",
            "then": then,
            "then-action": "start",
            "kind": "Mandatory",
        },
    )
    colocation = etree.Element(
        "rsc_colocation", id=xml_id("colocation", then, "with", first), rsc=then, **{"with-rsc": first}, score="INFINITY"
    )
    return [order, colocation]


