"""The concrete cluster a validated StackSpec describes: every guest, export, import,
volume group and file system with its derived names, addresses and defaults filled in.

Renderers and components read this, never the raw spec defaults, so a default is
decided in exactly one place.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional

from spec.model import GuestSize, Hypervisor, StackSpec
from spec.names import DATA_DISK_DEVICES, Names
from spec.rules import HOST, cluster_name, export_port, member_count, member_names, planned_addresses, resolved_selinux
from spec.vocabulary import FenceMethod, GuestRole, Protocol, SelinuxMode


def guest_device(domain_type: str, target: str) -> str:
    """The disk as the guest sees it: Xen names virtio-style targets xvdX."""
    return f"/dev/x{target}" if domain_type == "xen" else f"/dev/{target}"


@dataclass(frozen=True)
class DataDisk:
    export: str
    size_gib: int
    target: str  # device name inside the guest, e.g. vdb


@dataclass(frozen=True)
class Guest:
    """A libvirt domain this stack creates."""

    name: str  # short name: m1, s1, ...
    role: GuestRole
    domain: str
    address: ipaddress.IPv4Address
    hypervisor: Hypervisor
    size: GuestSize
    data_disks: tuple[DataDisk, ...] = ()


@dataclass(frozen=True)
class Member:
    name: str
    nodeid: int
    address: ipaddress.IPv4Address
    domain: str


@dataclass(frozen=True)
class ExportPlan:
    name: str
    protocol: Protocol
    server: str
    server_address: ipaddress.IPv4Address
    server_is_guest: bool
    device: str  # block device on the server
    port: int


@dataclass(frozen=True)
class FilesystemPlan:
    vg: str
    lv: str
    fs_name: str
    lock_table: str
    journals: int
    mount_point: str
    mount_options: tuple[str, ...]

    @property
    def device(self) -> str:
        return f"/dev/{self.vg}/{self.lv}"


@dataclass(frozen=True)
class LogicalVolumePlan:
    name: str
    size: str
    filesystem: Optional[FilesystemPlan]


@dataclass(frozen=True)
class VolumeGroupPlan:
    name: str
    exports: tuple[str, ...]
    logical_volumes: tuple[LogicalVolumePlan, ...]


@dataclass(frozen=True)
class FencingPlan:
    method: FenceMethod
    port: int
    multicast_address: ipaddress.IPv4Address
    # Where fence_xvm in the members finds the key, and where fence_virtd finds it.
    member_key_path: str = "/etc/cluster/fence_xvm.key"



@dataclass(frozen=True)
class Topology:
    spec: StackSpec
    names: Names
    cluster_name: str
    two_node: bool
    selinux: SelinuxMode
    host_address: ipaddress.IPv4Address
    bridge: str
    members: tuple[Member, ...]
    guests: tuple[Guest, ...]
    exports: tuple[ExportPlan, ...]
    volume_groups: tuple[VolumeGroupPlan, ...]
    fencing: FencingPlan

    @property
    def filesystems(self) -> tuple[FilesystemPlan, ...]:
        return tuple(lv.filesystem for vg in self.volume_groups for lv in vg.logical_volumes if lv.filesystem)

    @property
    def member_guests(self) -> tuple[Guest, ...]:
        return tuple(g for g in self.guests if g.role == "member")

    @property
    def server_guests(self) -> tuple[Guest, ...]:
        return tuple(g for g in self.guests if g.role == "server")

    def guest(self, name: str) -> Guest:
        return next(g for g in self.guests if g.name == name)

    def hypervisor(self, name: Optional[str]) -> Hypervisor:
        hvs = self.spec.hypervisors
        return next((h for h in hvs if h.name == name), hvs[0])

    @property
    def member_hypervisor(self) -> Hypervisor:
        """Where the members run (and so the tenant's fence_virtd)."""
        return self.hypervisor(self.spec.members.hypervisor)

    @property
    def first_member(self) -> Member:
        """The member that runs the cluster-wide steps (mkfs, the VG, the CIB)."""
        return self.members[0]


def build(spec: StackSpec) -> Topology:
    """The topology of a spec that passed spec.rules.check()."""
    names = Names(spec.tenant, spec.environment, spec.network.vlan_id)
    net = spec.network
    hv = {h.name: h for h in spec.hypervisors}
    first_hv = spec.hypervisors[0]
    n = member_count(spec)
    address = {owner: a for owner, (_, a) in planned_addresses(spec).items()}

    exports_by_server: dict[str, list] = {}
    for e in spec.storage.exports:
        exports_by_server.setdefault(e.server, []).append(e)

    guests: list[Guest] = []
    export_device: dict[str, str] = {}
    for s in spec.storage.servers:
        if s.kind == "external":
            for e in exports_by_server.get(s.name, []):
                export_device[e.name] = e.device
            continue
        disks = tuple(
            DataDisk(e.name, e.size_gib, DATA_DISK_DEVICES[k]) for k, e in enumerate(exports_by_server.get(s.name, []))
        )
        server_hv = hv.get(s.hypervisor, first_hv)
        for d in disks:
            export_device[d.export] = guest_device(server_hv.domain_type, d.target)
        guests.append(
            Guest(s.name, "server", names.domain(s.name), address[s.name], server_hv, s, disks)
        )
    members = tuple(
        Member(name, i + 1, address[name], names.domain(name)) for i, name in enumerate(member_names(spec))
    )
    member_hv = hv.get(spec.members.hypervisor, first_hv)
    guests += [Guest(m.name, "member", m.domain, m.address, member_hv, spec.members) for m in members]

    kinds = {s.name: s.kind for s in spec.storage.servers}
    exports = tuple(
        ExportPlan(
            e.name,
            e.protocol,
            e.server,
            address[e.server],
            kinds[e.server] == "guest",
            export_device[e.name],
            export_port(e),
        )
        for e in spec.storage.exports
    )

    cname = cluster_name(spec)
    vgs = tuple(
        VolumeGroupPlan(
            vg.name,
            tuple(vg.exports),
            tuple(
                LogicalVolumePlan(
                    lv.name,
                    lv.size,
                    None
                    if lv.filesystem is None
                    else FilesystemPlan(
                        vg.name,
                        lv.name,
                        lv.filesystem.fs_name,
                        f"{cname}:{lv.filesystem.fs_name}",
                        lv.filesystem.journals or n + 1,
                        lv.filesystem.mount_point,
                        _mount_options(spec, lv.filesystem),
                    ),
                )
                for lv in vg.logical_volumes
            ),
        )
        for vg in spec.storage.volume_groups
    )

    f = spec.fencing
    fencing = FencingPlan(f.method, f.port or names.fence_port, f.multicast_address or names.fence_multicast)
    return Topology(
        spec=spec,
        names=names,
        cluster_name=cname,
        two_node=n == 2,
        selinux=resolved_selinux(spec),
        host_address=address[HOST],
        bridge=net.bridge or names.bridge,
        members=members,
        guests=tuple(guests),
        exports=exports,
        volume_groups=vgs,
        fencing=fencing,
    )


def _mount_options(spec: StackSpec, fs) -> tuple[str, ...]:
    opts = list(fs.mount_options)
    # One context for the whole file system: SELinux then reads no per-file labels.
    if fs.selinux_context and resolved_selinux(spec) != "disabled":
        opts.append(f'context="{fs.selinux_context}"')
    return tuple(opts)
