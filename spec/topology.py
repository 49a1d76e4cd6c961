"""The concrete cluster a validated StackSpec describes: every guest, export, import,
volume group and file system with its derived names, addresses and defaults filled in.

Renderers and components read this, never the raw spec defaults, so a default is
decided in exactly one place.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping, Optional, get_args

from spec import libvirt_uri
from spec.model import Export, Filesystem, GuestSize, Hypervisor, StackSpec
from spec.names import DATA_DISK_DEVICES, Names
from spec.vocabulary import FenceMethod, GuestRole, Protocol, SelinuxMode

# --- defaults: what a stack leaves out, decided here only ------------------------------
# The rules (spec/rules.py) judge a stack by these too.

DEFAULT_MEMBER_COUNT = 3
# Where each export protocol listens unless the stack gives a port.
DEFAULT_PORTS: dict[str, int] = {"nbd": 10809, "iscsi": 3260, "gnbd": 14567}
assert set(DEFAULT_PORTS) == set(get_args(Protocol))
# A tenant's fence_virtd listens on FENCE_PORT_BASE + its VLAN id: one port per tenant
# on a hypervisor.
FENCE_PORT_BASE = 20000
# The hypervisor's key in planned_addresses(); no label can contain "@".
HOST = "@host"
# Offsets inside network.cidr for addresses the user did not give.
HOST_OFFSET = 1
SERVER_OFFSET = 10
MEMBER_OFFSET = 20
# Whom the host-side steps log in as when a hypervisor's URI names no user.
HYPERVISOR_USER = "root"


def member_count(spec: StackSpec) -> int:
    m = spec.members
    if m.names is not None:
        return len(m.names)
    return m.count if m.count is not None else DEFAULT_MEMBER_COUNT


def member_names(spec: StackSpec) -> list[str]:
    return list(spec.members.names or [f"m{i + 1}" for i in range(member_count(spec))])


def names_of(spec: StackSpec) -> Names:
    return Names(spec.tenant, spec.environment, spec.network.vlan_id)


def cluster_name(spec: StackSpec) -> str:
    return spec.cluster.name or names_of(spec).cluster


def lock_table(cluster: str, fs_name: str) -> str:
    """The DLM lock table of a file system; a stack that gives one must give this one."""
    return f"{cluster}:{fs_name}"


def journals(fs: Filesystem, members: int) -> int:
    # One per member plus one spare for a member added later.
    return fs.journals or members + 1


def cluster_node_names(spec: StackSpec) -> list[str]:
    """The guests in the cluster membership: the members, then each guest serving GNBD
    (legacy). GFS needs uncached GNBD exports, and gnbd_serv exports uncached devices
    only in cluster mode (not with -n), so a GNBD server is a cluster node that mounts
    no GFS2."""
    guests = {s.name for s in spec.storage.servers if s.kind == "guest"}
    servers = [e.server for e in spec.storage.exports if e.protocol == "gnbd" and e.server in guests]
    return member_names(spec) + list(dict.fromkeys(servers))


def guest_hypervisor(spec: StackSpec, name: Optional[str]) -> Hypervisor:
    """The hypervisor a guest naming NAME runs on: the first one when it names none."""
    hvs = spec.hypervisors
    return next((h for h in hvs if h.name == name), hvs[0])


@dataclass(frozen=True)
class Endpoint:
    """A machine the program reaches over SSH: USER at HOST, through JUMP when HOST is
    reachable only from there (a guest of a remote hypervisor). A jump host is reached
    directly. Always port 22: the spec names no other (spec/libvirt_uri.py refuses one)."""

    host: str
    user: str
    jump: Optional[Endpoint] = None


def hypervisor_endpoint(hv: Hypervisor) -> Optional[Endpoint]:
    """Where the host-side steps of HV run: None when HV is this machine (they run here,
    without SSH), else its URI's host."""
    uri = libvirt_uri.parse(hv.uri)
    if uri.host is None:
        return None
    return Endpoint(uri.host, uri.user or HYPERVISOR_USER)


def export_port(e: Export) -> int:
    return e.port or DEFAULT_PORTS[e.protocol]


def fence_port(spec: StackSpec) -> int:
    return spec.fencing.port or FENCE_PORT_BASE + spec.network.vlan_id


def fence_multicast(spec: StackSpec) -> ipaddress.IPv4Address:
    # 225.0.0.0/16 keeps one group per VLAN id; 225.0.0.12 (the default) is VLAN 12.
    vlan = spec.network.vlan_id
    return spec.fencing.multicast_address or ipaddress.IPv4Address(f"225.0.{vlan // 256}.{vlan % 256}")


def resolved_selinux(spec: StackSpec) -> SelinuxMode:
    if spec.selinux is not None:
        return spec.selinux
    return "enforcing" if spec.image.has_selinux else "disabled"


def planned_addresses(spec: StackSpec) -> dict[str, tuple[str, ipaddress.IPv4Address]]:
    """Every address on the tenant network by owner (HOST, a server or member name),
    with the key path it came from (or the key to set when it is a default)."""
    cidr = spec.network.cidr
    out: dict[str, tuple[str, ipaddress.IPv4Address]] = {}
    host = spec.network.host_address
    out[HOST] = ("network.hostAddress", host or cidr.network_address + HOST_OFFSET)
    for i, s in enumerate(spec.storage.servers):
        out[s.name] = (f"storage.servers[{i}].address", s.address or cidr.network_address + SERVER_OFFSET + i + 1)
    given = spec.members.addresses
    for i, name in enumerate(member_names(spec)):
        if given is not None and i < len(given):
            out[name] = (f"members.addresses[{i}]", given[i])
        else:
            out[name] = ("members.addresses", cidr.network_address + MEMBER_OFFSET + i + 1)
    return out


# --- the topology ------------------------------------------------------------------------


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
class ClusterNode:
    """A guest in the cluster membership."""

    name: str
    nodeid: int
    address: ipaddress.IPv4Address
    domain: str  # libvirt domain, what fence_xvm names


@dataclass(frozen=True)
class Member(ClusterNode):
    """A cluster node that mounts the file systems."""


@dataclass(frozen=True)
class ExportPlan:
    name: str
    protocol: Protocol
    server: str
    server_address: ipaddress.IPv4Address
    server_is_guest: bool
    device: str  # block device on the server
    port: int
    size_gib: Optional[int] = None  # the disk made for it on a guest server; None: external
    size_key: str = ""  # the config key of that size, for messages


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
    size_key: str = ""  # the config key of its size, for messages


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
    # The members, then the guests serving GNBD (cluster_node_names).
    cluster_nodes: tuple[ClusterNode, ...]
    guests: tuple[Guest, ...]
    exports: tuple[ExportPlan, ...]
    volume_groups: tuple[VolumeGroupPlan, ...]
    fencing: FencingPlan
    # Every guest and external server by name (what node scripts reach), and every
    # hypervisor by name (None: this machine).
    endpoints: Mapping[str, Endpoint]
    hypervisor_endpoints: Mapping[str, Optional[Endpoint]]

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
        return guest_hypervisor(self.spec, name)

    def endpoint(self, node: str) -> Endpoint:
        """How node scripts reach guest or external server NODE."""
        return self.endpoints[node]

    def hypervisor_endpoint(self, hypervisor: str) -> Optional[Endpoint]:
        """How host-side steps reach the hypervisor named so; None: it is this machine."""
        return self.hypervisor_endpoints[hypervisor]

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
    names = names_of(spec)
    net = spec.network
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
        server_hv = guest_hypervisor(spec, s.hypervisor)
        for d in disks:
            export_device[d.export] = guest_device(server_hv.domain_type, d.target)
        guests.append(
            Guest(s.name, "server", names.domain(s.name), address[s.name], server_hv, s, disks)
        )
    members = tuple(
        Member(name, i + 1, address[name], names.domain(name)) for i, name in enumerate(member_names(spec))
    )
    member_hv = guest_hypervisor(spec, spec.members.hypervisor)
    guests += [Guest(m.name, "member", m.domain, m.address, member_hv, spec.members) for m in members]
    # cman numbers the GNBD servers after the members.
    servers = cluster_node_names(spec)[n:]
    cluster_nodes = members + tuple(
        ClusterNode(name, n + k + 1, address[name], names.domain(name)) for k, name in enumerate(servers)
    )

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
            e.size_gib if kinds[e.server] == "guest" else None,
            f"storage.exports[{i}].sizeGib",
        )
        for i, e in enumerate(spec.storage.exports)
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
                        lock_table(cname, lv.filesystem.fs_name),
                        journals(lv.filesystem, n),
                        lv.filesystem.mount_point,
                        _mount_options(spec, lv.filesystem),
                    ),
                    f"storage.volumeGroups[{i}].logicalVolumes[{j}].size",
                )
                for j, lv in enumerate(vg.logical_volumes)
            ),
        )
        for i, vg in enumerate(spec.storage.volume_groups)
    )

    fencing = FencingPlan(spec.fencing.method, fence_port(spec), fence_multicast(spec))
    hv_endpoints = {h.name: hypervisor_endpoint(h) for h in spec.hypervisors}
    user = spec.ssh.user
    # A guest is dialled through its hypervisor when that one is remote; an external
    # server runs on no hypervisor of this stack and is dialled directly.
    endpoints = {g.name: Endpoint(str(g.address), user, hv_endpoints[g.hypervisor.name]) for g in guests}
    endpoints.update({s.name: Endpoint(str(address[s.name]), user) for s in spec.storage.servers if s.kind == "external"})
    return Topology(
        spec=spec,
        names=names,
        cluster_name=cname,
        two_node=n == 2,
        selinux=resolved_selinux(spec),
        host_address=address[HOST],
        bridge=net.bridge or names.bridge,
        members=members,
        cluster_nodes=cluster_nodes,
        guests=tuple(guests),
        exports=exports,
        volume_groups=vgs,
        fencing=fencing,
        endpoints=endpoints,
        hypervisor_endpoints=hv_endpoints,
    )


def _mount_options(spec: StackSpec, fs: Filesystem) -> tuple[str, ...]:
    opts = list(fs.mount_options)
    # One context for the whole file system: SELinux then reads no per-file labels.
    if fs.selinux_context and resolved_selinux(spec) != "disabled":
        opts.append(f'context="{fs.selinux_context}"')
    return tuple(opts)
