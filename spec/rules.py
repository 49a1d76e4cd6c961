"""Rules that relate several fields of a StackSpec.

Each rule yields Issues: the camelCase key path the user wrote and what is allowed.
They all run (one run reports every problem) before any resource is registered, on a
stack with model errors too: each rule that reads only keys that validated.
"""

from __future__ import annotations

import ipaddress
import posixpath
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

from spec import gfs2
from spec.display import shown
from spec.model import LV_FIXED, LV_PERCENT, Export, NotValidated, PartialStackSpec, StackSpec
from spec.names import BRIDGE_PREFIX, CIB_DERIVED, DATA_DISK_DEVICES, fs_resource_id, lvm_resource_id
from spec.topology import (
    FENCE_PORT_BASE,
    HOST,
    HOST_OFFSET,
    cluster_name,
    cluster_node_names,
    export_port,
    guest_hypervisor,
    hypervisor_endpoint,
    journals,
    lock_table,
    member_count,
    member_names,
    names_of,
    planned_addresses,
    resolved_selinux,
)
from spec.vocabulary import SECRET_KEYS

GFS2_MAX_NODES = 16
# cman keeps the cluster name in a 16-byte field ("The cluster name cannot exceed 15
# characters", RHEL 5 Cluster Administration).
CMAN_CLUSTER_NAME_MAX = 15
# RHEL 5's Cluster Suite supports clusters of up to 16 nodes; GNBD servers are nodes.
CMAN_MAX_NODES = 16
DM_NAME_MAX = 127
# RHEL/CentOS 5 has neither nbd-client nor an LIO target (targetcli): GNBD it is.
PROTOCOLS = {"legacy": ("gnbd",), "current": ("nbd", "iscsi")}
MANAGEMENT = {"legacy": ("none", "luci"), "current": ("none", "pcsd")}


@dataclass(frozen=True)
class Issue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class Context:
    """What the rules know besides the spec: which secret config keys are set."""

    secrets_set: frozenset[str] = frozenset()


Rule = Callable[[StackSpec, Context], Iterable[Issue]]
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    RULES.append(fn)
    return fn


def _duplicates(values: Iterable) -> set:
    return {v for v, n in Counter(values).items() if n > 1}


@rule
def members_shape(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    m = spec.members
    if m.count is not None and m.names is not None and m.count != len(m.names):
        yield Issue("members.count", f"is {m.count} but members.names lists {len(m.names)}; give one of them")
    n = member_count(spec)
    if n < 2:
        yield Issue("members", f"a cluster needs at least 2 members, got {n}; set members.count (2 to {GFS2_MAX_NODES}) or list members.names")
    if n > GFS2_MAX_NODES:
        yield Issue("members", f"GFS2 supports at most {GFS2_MAX_NODES} members, got {n}")
    if m.addresses is not None and len(m.addresses) != n:
        yield Issue("members.addresses", f"lists {len(m.addresses)} addresses for {n} members")
    if m.names is not None:
        for name in sorted(_duplicates(m.names)):
            yield Issue("members.names", f"{name!r} appears twice")
        if "localhost" in m.names:
            yield Issue(
                f"members.names[{m.names.index('localhost')}]",
                "localhost is every machine's own name (127.0.0.1 in /etc/hosts), so the cluster could not find "
                "the member; choose another",
            )


# The Xen credit scheduler's weight is 16 bits.
XEN_MAX_WEIGHT = 65535


@rule
def cpu_limits(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    guests = [("members", spec.members, spec.members.hypervisor)] + [
        (f"storage.servers[{i}]", s, s.hypervisor) for i, s in enumerate(spec.storage.servers)
    ]
    for path, g, where in guests:
        if g.cpu_cap_percent is not None and g.cpu_cap_percent > 100 * g.vcpu:
            yield Issue(f"{path}.cpuCapPercent", f"{g.cpu_cap_percent}% is more than {g.vcpu} vCPU can use ({100 * g.vcpu}%)")
        on_xen = guest_hypervisor(spec, where).domain_type == "xen"
        if on_xen and g.cpu_shares is not None and g.cpu_shares > XEN_MAX_WEIGHT:
            yield Issue(f"{path}.cpuShares", f"the Xen credit scheduler's weight is at most {XEN_MAX_WEIGHT}")


@rule
def hypervisor_references(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    names = [h.name for h in spec.hypervisors]
    for name in sorted(_duplicates(names)):
        yield Issue("hypervisors", f"name {name!r} appears twice")
    for i, h in enumerate(spec.hypervisors):
        if h.domain_type == "xen" and h.driver != "xen":
            yield Issue(f"hypervisors[{i}].uri", f"domainType xen needs a xen:// or xen+ssh:// URI, got {shown(h.uri)}")
        if h.domain_type in ("qemu", "kvm") and h.driver != "qemu":
            yield Issue(
                f"hypervisors[{i}].uri", f"domainType {h.domain_type} needs a qemu:// or qemu+ssh:// URI, got {shown(h.uri)}"
            )
        if spec.network.mode == "vlan" and h.trunk is None:
            yield Issue(f"hypervisors[{i}].trunk", "network.mode vlan needs the interface that carries the VLANs")
        if h.trunk is not None and len(names_of(spec).vlan_interface(h.trunk)) > 15:
            yield Issue(f"hypervisors[{i}].trunk", f"{h.trunk}.{spec.network.vlan_id} is longer than 15 characters")
        endpoint = hypervisor_endpoint(h)
        if endpoint is not None and endpoint.user != "root":
            yield Issue(
                f"hypervisors[{i}].uri",
                f"user {endpoint.user}: the host-side steps (bridge, iptables, fence_virtd) run as the URI's user, without "
                "sudo, so it must be root; write root@HOST",
            )
    machines: dict[str, int] = {}
    for i, h in enumerate(spec.hypervisors):
        endpoint = hypervisor_endpoint(h)
        machine = endpoint.host if endpoint is not None else "this machine"
        if machine in machines:
            yield Issue(
                f"hypervisors[{i}].uri",
                f"{machine} is already hypervisors[{machines[machine]}]: one machine listed twice would get the "
                "tenant's bridge and guard twice; list it once",
            )
        machines.setdefault(machine, i)
    refs = [("members.hypervisor", spec.members.hypervisor)] + [
        (f"storage.servers[{i}].hypervisor", s.hypervisor) for i, s in enumerate(spec.storage.servers)
    ]
    for path, ref in refs:
        if ref is not None and ref not in names:
            yield Issue(path, f"no hypervisor named {shown(ref)}; known: {', '.join(names)}")


@rule
def node_login(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    if spec.ssh.user != "root":
        yield Issue(
            "ssh.user",
            f"{spec.ssh.user}: the node steps write /etc and start services without sudo, and the guests authorize "
            "the key for root only; use root",
        )


@rule
def guests_reach_each_other(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    """Guests on several hypervisors share the tenant's VLAN; an isolated network is one
    host's own. And the tenant's fence_virtd, on the members' hypervisor, sees only the
    domains there: every cluster node must run there."""
    members_on = guest_hypervisor(spec, spec.members.hypervisor).name
    cluster_nodes = set(cluster_node_names(spec)) if spec.generation == "legacy" else set()
    for i, s in enumerate(spec.storage.servers):
        if s.kind != "guest":
            continue
        on = guest_hypervisor(spec, s.hypervisor).name
        if on == members_on:
            continue
        if spec.network.mode == "isolated":
            yield Issue(
                f"storage.servers[{i}].hypervisor",
                f"network.mode isolated is a network on one host: {s.name} on {on} could never reach the members on "
                f"{members_on}; put it on {members_on}, or use network.mode vlan",
            )
        elif s.name in cluster_nodes and spec.fencing.method == "fence_xvm":
            yield Issue(
                f"storage.servers[{i}].hypervisor",
                f"{s.name} is a cman node (it serves GNBD), and this tenant's fence_virtd on {members_on} fences only "
                f"the domains there; put it on {members_on}",
            )


@rule
def generation_parts(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    gen = spec.generation
    for i, e in enumerate(spec.storage.exports):
        if e.protocol not in PROTOCOLS[gen]:
            why = "GNBD exists only in RHEL/CentOS 5" if e.protocol == "gnbd" else "RHEL/CentOS 5 has no nbd-client nor LIO target"
            yield Issue(
                f"storage.exports[{i}].protocol",
                f"{e.protocol} needs generation {'legacy' if gen == 'current' else 'current'} ({why}); "
                f"generation {gen} allows {', '.join(PROTOCOLS[gen])}",
            )
    if spec.management not in MANAGEMENT[gen]:
        other = "legacy" if gen == "current" else "current"
        yield Issue("management", f"{spec.management} belongs to generation {other}; generation {gen} allows {', '.join(MANAGEMENT[gen])}")
    legacy_os = spec.image.os_family == "centos5"
    if legacy_os != (gen == "legacy"):
        yield Issue("image.osFamily", f"{spec.image.os_family} does not run generation {gen}; legacy runs centos5, current runs debian12 or rhel9")


@rule
def cluster_and_lock_table(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    name = cluster_name(spec)
    path = "cluster.name" if spec.cluster.name else "cluster.name (derived from tenant-environment)"
    if spec.generation == "legacy" and len(name) > CMAN_CLUSTER_NAME_MAX:
        yield Issue(path, f"{name!r} is longer than cman's {CMAN_CLUSTER_NAME_MAX} characters; set cluster.name")
    for i, vg in enumerate(spec.storage.volume_groups):
        for j, lv in enumerate(vg.logical_volumes):
            fs = lv.filesystem
            if fs is None or fs.lock_table is None:
                continue
            at = f"storage.volumeGroups[{i}].logicalVolumes[{j}].filesystem.lockTable"
            if fs.lock_table != lock_table(name, fs.fs_name):
                yield Issue(
                    at,
                    f"must be {lock_table(name, fs.fs_name)} (CLUSTER:FS with this stack's cluster name), got {shown(fs.lock_table)}; "
                    "or leave it out (it is derived)",
                )


@rule
def cman_limits(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    if spec.generation != "legacy":
        return
    nodes = cluster_node_names(spec)
    servers = len(nodes) - member_count(spec)
    if len(nodes) > CMAN_MAX_NODES:
        yield Issue(
            "members",
            f"{member_count(spec)} members and {servers} GNBD server(s) make {len(nodes)} cman nodes, more than the "
            f"{CMAN_MAX_NODES} RHEL 5's Cluster Suite supports (GNBD servers are cluster nodes); use fewer members or servers",
        )
    if spec.cluster.two_node:
        yield Issue(
            "cluster.twoNode",
            "cman counts the GNBD server's vote too, so two members already make three votes and a majority; remove twoNode",
        )


@rule
def quorum(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    if spec.generation == "legacy":
        return  # cman_limits: the GNBD server votes too
    n = member_count(spec)
    if n == 2 and spec.cluster.two_node is False:
        yield Issue("cluster.twoNode", "two members keep quorum only with two-node mode; remove twoNode: false")
    if n != 2 and spec.cluster.two_node:
        yield Issue("cluster.twoNode", f"two-node mode is for exactly 2 members, this stack has {n}; remove twoNode")


@rule
def fencing_choice(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    f = spec.fencing
    if f.method == "none" and not f.lab_without_fencing:
        yield Issue(
            "fencing.method",
            "none leaves GFS2 hanging (or corrupt) when a member fails; set fencing.labWithoutFencing: true to accept that in a lab",
        )
    if f.method != "none" and f.lab_without_fencing:
        yield Issue("fencing.labWithoutFencing", f"is true but fencing.method is {f.method}; remove one of them")
    if f.multicast_address is not None and not f.multicast_address.is_multicast:
        yield Issue("fencing.multicastAddress", f"{f.multicast_address} is not a multicast address (224.0.0.0/4); leave it out for the derived 225.0.X.Y")
    elif f.multicast_address is not None and f.multicast_address in ipaddress.IPv4Network("224.0.0.0/24"):
        yield Issue(
            "fencing.multicastAddress",
            f"{f.multicast_address} is in 224.0.0.0/24, kept for routing protocols (VRRP, mDNS, ...); leave it out for the derived 225.0.X.Y",
        )
    if f.method == "fence_virsh":
        # The CIB would name an identity file on the members that no step installs, nor
        # its public half on the hypervisor: every fence would fail, and GFS2 hang.
        yield Issue(
            "fencing.method",
            "fence_virsh is refused until it works end to end: nothing installs its SSH key on the members and the "
            "hypervisor, so it could never fence; use fence_xvm (this tenant's own fence_virtd)",
        )


@rule
def filesystems(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    n = member_count(spec)
    mounts, fs_names = [], []
    for i, vg in enumerate(spec.storage.volume_groups):
        for j, lv in enumerate(vg.logical_volumes):
            fs = lv.filesystem
            if fs is None:
                continue
            at = f"storage.volumeGroups[{i}].logicalVolumes[{j}].filesystem"
            if fs.journals is not None and fs.journals < n:
                yield Issue(f"{at}.journals", f"{fs.journals} journals for {n} members that mount it; GFS2 needs one per member")
            if fs.selinux_context is not None and resolved_selinux(spec) == "disabled":
                yield Issue(f"{at}.selinuxContext", "is set but SELinux is disabled on the members; the mount would fail")
            yield from _mount_options(f"{at}.mountOptions", fs.mount_options, spec.generation)
            mounts.append((f"{at}.mountPoint", fs.mount_point))
            fs_names.append((f"{at}.fsName", fs.fs_name))
    for label, pairs in (("mount point", mounts), ("file system name", fs_names)):
        dup = _duplicates(v for _, v in pairs)
        for path, value in pairs:
            if value in dup:
                yield Issue(path, f"{label} {value!r} is used twice")
    for path, inner in mounts:
        outer = next((o for _, o in mounts if gfs2.nested(o, inner)), None)
        if outer is not None:
            yield Issue(
                path,
                f"{inner} is inside {outer}, another GFS2 mount: the mounts start in no order, and one started first "
                "is hidden; give each file system its own directory",
            )


def _mount_options(path: str, options: list[str], generation: str) -> Iterator[Issue]:
    for k, option in enumerate(options):
        problem = gfs2.option_problem(option, generation)
        if problem is not None:
            yield Issue(f"{path}[{k}]", f"{shown(option)}: {problem}")
    for k, problem in gfs2.conflicts(options):
        yield Issue(f"{path}[{k}]", f"{shown(options[k])} {problem}")


@rule
def selinux_available(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    if spec.selinux in ("enforcing", "permissive") and not spec.image.has_selinux:
        yield Issue("selinux", f"the {spec.image.os_family} image has no SELinux; use disabled (or leave it unset)")


@rule
def storage_references(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    st = spec.storage
    servers = {s.name: s for s in st.servers}
    for kind, items in (("server", st.servers), ("export", st.exports), ("volume group", st.volume_groups)):
        for name in sorted(_duplicates(x.name for x in items)):
            yield Issue(f"storage.{'volumeGroups' if kind == 'volume group' else kind + 's'}", f"{kind} name {name!r} appears twice")
    members = set(member_names(spec))
    for i, s in enumerate(st.servers):
        if s.kind == "external" and s.hypervisor is not None:
            yield Issue(f"storage.servers[{i}].hypervisor", f"{s.name} is external: it runs on no hypervisor of this stack; remove it")
        if s.name in members:
            yield Issue(f"storage.servers[{i}].name", f"{s.name!r} is also a member name")
        if s.name == "localhost":
            yield Issue(f"storage.servers[{i}].name", "localhost is every machine's own name (127.0.0.1 in /etc/hosts); choose another")
        if s.kind == "external" and s.address is None:
            yield Issue(f"storage.servers[{i}].address", "an external server needs its address on the tenant network")
        if s.kind == "external" and spec.network.mode == "isolated":
            yield Issue(
                f"storage.servers[{i}].kind",
                "network.mode isolated is a libvirt network of its own without an uplink: the members could never "
                "reach an external server; use network.mode vlan or ovs (the server on the tenant's VLAN), or kind guest",
            )
    for i, e in enumerate(st.exports):
        server = servers.get(e.server)
        if server is None:
            yield Issue(f"storage.exports[{i}].server", f"no storage server named {shown(e.server)}; known: {', '.join(servers)}")
            continue
        if server.kind == "guest" and e.size_gib is None:
            yield Issue(f"storage.exports[{i}].sizeGib", f"server {server.name} is a guest: give the size of the disk to create")
        if server.kind == "guest" and e.device is not None:
            yield Issue(f"storage.exports[{i}].device", f"server {server.name} is a guest: its disk is created, use sizeGib")
        if server.kind == "external" and e.protocol == "gnbd":
            yield Issue(
                f"storage.exports[{i}].server",
                f"a GNBD server must be a cluster node (gnbd_serv runs in cluster mode); {server.name} is external",
            )
        if server.kind == "external" and e.device is None:
            yield Issue(f"storage.exports[{i}].device", f"server {server.name} is external: name the device to export")
    exports = {e.name for e in st.exports}
    used: Counter = Counter()
    for i, vg in enumerate(st.volume_groups):
        for j, name in enumerate(vg.exports):
            used[name] += 1
            if name not in exports:
                yield Issue(
                    f"storage.volumeGroups[{i}].exports[{j}]", f"no export named {shown(name)}; known: {', '.join(sorted(exports))}"
                )
            elif used[name] == 2:
                yield Issue(f"storage.volumeGroups[{i}].exports[{j}]", f"export {name!r} is already in another volume group")
        for name in sorted(_duplicates(lv.name for lv in vg.logical_volumes)):
            yield Issue(f"storage.volumeGroups[{i}].logicalVolumes", f"logical volume {name!r} appears twice")
        for j, lv in enumerate(vg.logical_volumes):
            # device-mapper names VG-LV, each '-' doubled, in at most 127 bytes.
            dm_name = f"{vg.name.replace('-', '--')}-{lv.name.replace('-', '--')}"
            if len(dm_name) > DM_NAME_MAX:
                yield Issue(
                    f"storage.volumeGroups[{i}].logicalVolumes[{j}].name",
                    f"with its volume group this makes the device-mapper name {dm_name[:20]}..., {len(dm_name)} "
                    f"characters ('-' counts twice), more than {DM_NAME_MAX}; shorten the names",
                )
        for j, lv in enumerate(vg.logical_volumes[:-1]):
            if lv.size.endswith("%FREE"):
                yield Issue(
                    f"storage.volumeGroups[{i}].logicalVolumes[{j}].size",
                    "a %FREE size takes what is left, so only the last logical volume may use it; give this one a size such as 100G",
                )


def _endpoint(spec: StackSpec, server: str) -> str:
    """Which machine an export's server is: two external entries with one address are one."""
    s = next((s for s in spec.storage.servers if s.name == server), None)
    return str(s.address) if s is not None and s.kind == "external" and s.address else server


@rule
def export_placement(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    """What one server can carry: data disks of a guest, each device once."""
    kinds = {s.name: s.kind for s in spec.storage.servers}
    disks: Counter = Counter()
    devices: dict[tuple[str, str], int] = {}
    for j, e in enumerate(spec.storage.exports):
        if kinds.get(e.server) == "guest":
            disks[e.server] += 1
            if disks[e.server] == len(DATA_DISK_DEVICES) + 1:
                yield Issue(
                    f"storage.exports[{j}].server",
                    f"server {e.server} already carries {len(DATA_DISK_DEVICES)} data disks "
                    f"({DATA_DISK_DEVICES[0]} to {DATA_DISK_DEVICES[-1]}), the most a guest gets here; "
                    "put this export on another storage server",
                )
        if kinds.get(e.server) == "external" and e.device is not None:
            key = (_endpoint(spec, e.server), posixpath.normpath(e.device))
            if key in devices:
                i = devices[key]
                yield Issue(
                    f"storage.exports[{j}].device",
                    f"{shown(e.device)} on {e.server} is already exported as storage.exports[{i}] "
                    f"({spec.storage.exports[i].name}): two exports of one device would let two volume groups "
                    "overwrite each other; export another device",
                )
            else:
                devices[key] = j


PROTOCOL_NAMES = {"nbd": "NBD", "iscsi": "iSCSI", "gnbd": "GNBD"}
# Why two exports of one server cannot share a port, by the later one's protocol.
PORT_SHARING = {
    "nbd": "each NBD export runs its own nbd-server on its own port",
    "iscsi": "an iSCSI portal (LIO) is shared by iSCSI exports only",
    "gnbd": "gnbd_serv's port serves GNBD exports only",
}


@rule
def export_ports(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    """Ports per server: NBD one per export, iSCSI exports share a portal, all GNBD
    exports of a server one gnbd_serv port, never a port of another protocol or SSH."""
    by_server: dict[str, list[tuple[int, Export]]] = {}
    for j, e in enumerate(spec.storage.exports):
        by_server.setdefault(_endpoint(spec, e.server), []).append((j, e))
    for exports in by_server.values():
        taken = {export_port(e) for _, e in exports}
        owner: dict[int, int] = {}
        first_gnbd: Optional[int] = None
        for j, e in exports:
            port, at = export_port(e), f"storage.exports[{j}].port"
            said = f"port {port}" + ("" if e.port else f" (the {PROTOCOL_NAMES[e.protocol]} default)")
            if port == 22:
                yield Issue(at, "port 22 is the server's SSH, which the program reaches it by; choose another port")
                continue
            if e.protocol == "gnbd":
                if first_gnbd is None:
                    first_gnbd = j
                elif export_port(spec.storage.exports[first_gnbd]) != port:
                    yield Issue(
                        at,
                        f"{said}: one gnbd_serv serves all GNBD exports of {e.server} on one port, and "
                        f"storage.exports[{first_gnbd}] uses {export_port(spec.storage.exports[first_gnbd])}; give them the same port",
                    )
                    continue
            i = owner.get(port)
            if i is None:
                owner[port] = j
                continue
            other = spec.storage.exports[i]
            if other.protocol == e.protocol and e.protocol in ("iscsi", "gnbd"):
                continue
            free = next(p for p in [*range(port + 1, 65536), *range(port - 1, 1023, -1)] if p not in taken)
            yield Issue(
                at,
                f"{said} on server {e.server} is already taken by storage.exports[{i}] ({other.name}, {other.protocol}); "
                f"{PORT_SHARING[e.protocol]}: give storage.exports[{j}].port a free port, e.g. {free}",
            )
            taken.add(free)


# What lvcreate and mkfs.gfs2 need: 4 MiB extents, one lost to the PV's metadata area
# (1 MiB at its start), and journals of at least 8 MiB.
EXTENT_MIB = 4
JOURNAL_MIN_MIB = 8
UNIT_MIB = {"M": 1, "G": 1024, "T": 1024 * 1024}


def _mib_text(mib: int) -> str:
    return f"{mib // 1024}G" if mib % 1024 == 0 else f"{mib}M"


def _vg_capacity_mib(spec: StackSpec, exports: list[str]) -> Optional[int]:
    """What a VG over EXPORTS can hold, when every export is a disk of known size."""
    by_name = {e.name: e for e in spec.storage.exports}
    if not all(name in by_name and by_name[name].size_gib for name in exports):
        return None
    return sum((by_name[name].size_gib * 1024 // EXTENT_MIB - 1) * EXTENT_MIB for name in exports)


@rule
def logical_volume_sizes(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    """No VG asked for more than its exports give; no LV too small for its journals.
    (Where an export is an external device of unknown size, only the form is checked.)"""
    members = member_count(spec)
    for i, vg in enumerate(spec.storage.volume_groups):
        capacity = _vg_capacity_mib(spec, vg.exports)
        used, over = 0, False
        for j, lv in enumerate(vg.logical_volumes):
            at = f"storage.volumeGroups[{i}].logicalVolumes[{j}].size"
            fixed, percent = LV_FIXED.match(lv.size), LV_PERCENT.match(lv.size)
            size: Optional[int] = None
            if fixed:
                wanted = int(fixed.group(1)) * UNIT_MIB[fixed.group(2)]
                size = -(-wanted // EXTENT_MIB) * EXTENT_MIB
                used += size
                if capacity is not None and used > capacity and not over:
                    over = True
                    yield Issue(
                        at,
                        f"{lv.size} brings the logical volumes of {vg.name} to {_mib_text(used)}, more than the "
                        f"{_mib_text(capacity)} its exports give ({', '.join(vg.exports)}, less LVM metadata); "
                        "make the sizes smaller or the exports' sizeGib larger",
                    )
            elif percent and capacity is not None and not over:
                left = capacity - used
                size = left * int(percent.group(1)) // 100 // EXTENT_MIB * EXTENT_MIB
                if size < EXTENT_MIB:
                    yield Issue(
                        at,
                        f"nothing is left for {lv.size}: the logical volumes before it take all "
                        f"{_mib_text(capacity)} of {vg.name}; make them smaller",
                    )
                    continue
            fs = lv.filesystem
            count = journals(fs, members) if fs else 0
            if size is not None and fs is not None and size < count * JOURNAL_MIN_MIB:
                yield Issue(
                    at,
                    f"{_mib_text(size)} cannot hold the {count} journals of {fs.fs_name} "
                    f"(mkfs.gfs2 makes each at least {JOURNAL_MIN_MIB}M); make it larger",
                )


@rule
def pacemaker_ids(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    """Pacemaker IDs derived from VG and file system names never collide."""
    if spec.generation != "current":
        return
    named = []
    for i, vg in enumerate(spec.storage.volume_groups):
        named.append((f"storage.volumeGroups[{i}].name", vg.name, lvm_resource_id(vg.name)))
        for j, lv in enumerate(vg.logical_volumes):
            if lv.filesystem is not None:
                at = f"storage.volumeGroups[{i}].logicalVolumes[{j}].filesystem.fsName"
                named.append((at, lv.filesystem.fs_name, fs_resource_id(lv.filesystem.fs_name)))
    for k, (path, name, rsc_id) in enumerate(named):
        for other_path, other_name, other_id in named[:k]:
            tail = rsc_id[len(other_id) + 1:].split("-")[0] if rsc_id.startswith(other_id + "-") else None
            head = other_id[len(rsc_id) + 1:].split("-")[0] if other_id.startswith(rsc_id + "-") else None
            if rsc_id == other_id:
                why = "characters other than letters, digits, _ . - become _"
            elif tail in CIB_DERIVED or head in CIB_DERIVED:
                why = f"pacemaker derives IDs such as {min(rsc_id, other_id, key=len)}-{tail or head} from the shorter one"
            else:
                continue
            yield Issue(
                path,
                f"{name!r} gives the pacemaker ID {rsc_id}, which collides with {other_name!r} ({other_path}): {why}; rename one",
            )


def _unusable_range(cidr: ipaddress.IPv4Network) -> Optional[str]:
    if cidr.subnet_of(ipaddress.IPv4Network("0.0.0.0/8")):
        return "0.0.0.0/8 means 'this network'"
    for test, what in (("is_loopback", "loopback"), ("is_link_local", "link-local"), ("is_multicast", "multicast")):
        if getattr(cidr, test):
            return f"{what} addresses"
    if cidr.is_reserved:
        return "reserved addresses (240.0.0.0/4)"
    return None


@rule
def addresses(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    net = spec.network
    if (unusable := _unusable_range(net.cidr)) is not None:
        yield Issue("network.cidr", f"{net.cidr} holds {unusable}, which no LAN can use; give a private range such as 10.77.10.0/24")
        return
    if net.cidr.num_addresses < 8:
        yield Issue("network.cidr", f"{net.cidr} is too small for a host, servers and members; give at least a /29 (a /24 fits every default)")
        return
    external = {s.name for s in spec.storage.servers if s.kind == "external"}
    unaddressed = {s.name for s in spec.storage.servers if s.kind == "external" and s.address is None}
    planned = planned_addresses(spec)
    on_net = [
        (owner if owner != HOST else "the hypervisor", path, a) for owner, (path, a) in planned.items() if owner not in unaddressed
    ]
    for owner, path, a in on_net:
        if a not in net.cidr and owner in external:
            yield Issue(
                path,
                f"{a} ({owner}) is outside network.cidr {net.cidr}: the members reach only their own segment (the "
                "hypervisor routes nothing in or out of it); give the server's address on the tenant's VLAN, inside it",
            )
        elif a not in net.cidr:
            fix = "set it inside" if path != "members.addresses" else "list members.addresses inside it or widen it"
            yield Issue(path, f"{a} ({owner}) is outside network.cidr {net.cidr}; {fix}")
        elif a in (net.cidr.network_address, net.cidr.broadcast_address):
            yield Issue(path, f"{a} is the network or broadcast address of {net.cidr}; choose another")
    dup = _duplicates(a for _, _, a in on_net)
    for owner, path, a in on_net:
        if a in dup:
            yield Issue(path, f"{a} ({owner}) is used twice; every host, server and member needs its own address")


@rule
def network_mode(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    net = spec.network
    if net.mode == "ovs" and net.bridge is None:
        yield Issue("network.bridge", "network.mode ovs needs the name of the existing Open vSwitch bridge")
    if net.mode != "ovs" and net.bridge is not None:
        # Named here it could be another tenant's g2brN, or a bridge the host already has.
        yield Issue(
            "network.bridge",
            f"network.mode {net.mode} makes the tenant's own bridge {names_of(spec).bridge}; "
            "network.bridge names an existing Open vSwitch bridge (mode ovs) only: remove it",
        )
    elif net.bridge is not None and net.bridge.startswith(BRIDGE_PREFIX):
        yield Issue(
            "network.bridge",
            f"{net.bridge} is named like a tenant's own Linux bridge ({BRIDGE_PREFIX}VLAN), not an Open vSwitch one; "
            "give the OVS bridge (e.g. ovsbr0)",
        )


@rule
def isolated_network_host_address(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    net = spec.network
    first = net.cidr.network_address + HOST_OFFSET
    if net.mode == "isolated" and net.host_address is not None and net.host_address != first:
        yield Issue("network.hostAddress", f"an isolated libvirt network gives the host {first}, the first address of the CIDR")


@rule
def builtin_image_is_local(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    if spec.image.source == "builtin":
        for i, h in enumerate(spec.hypervisors):
            if hypervisor_endpoint(h) is not None:
                yield Issue(
                    f"hypervisors[{i}].uri",
                    "the builtin image boots its kernel from this machine's cache; a remote hypervisor needs image.source, kernel and initrd",
                )


@rule
def fence_port_range(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    if spec.fencing.port is not None and spec.fencing.port == 1229 and spec.network.mode == "vlan":
        yield Issue(
            "fencing.port",
            f"1229 is the shared default of fence_virtd; on a shared hypervisor each tenant needs its own port "
            f"(default {FENCE_PORT_BASE}+vlanId)",
        )


@rule
def image_boot(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    img = spec.image
    if img.source == "builtin" and img.os_family != "debian12":
        yield Issue("image.osFamily", "the builtin image is debian12; give image.source for other families")
    if img.boot == "direct" and img.source != "builtin":
        for key in ("kernel", "initrd"):
            if getattr(img, key) is None:
                yield Issue(f"image.{key}", "direct boot from your own image needs the kernel and initrd paths")
    if img.boot == "bootloader" and img.source == "builtin":
        yield Issue("image.boot", "the builtin image boots directly (kernel and initrd beside the disk)")
    if img.boot == "bootloader":
        for key in ("kernel", "initrd"):
            if getattr(img, key) is not None:
                yield Issue(f"image.{key}", "is not used: image.boot bootloader boots the image's own kernel; remove it or use boot direct")


@rule
def secrets(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    sources = secret_files(spec)
    needed = {"sshPrivateKey", "clusterAuthKey"}
    if spec.fencing.method == "fence_xvm":
        needed.add("fenceKey")
    for key, file_field in SECRET_KEYS.items():
        in_file = sources[key] is not None
        in_config = key in ctx.secrets_set
        if in_file and in_config:
            yield Issue(file_field, f"is set and so is the secret {key}; keep one")
        elif key in needed and not (in_file or in_config):
            yield Issue(file_field, f"missing: give {file_field} or set the secret (pulumi config set --secret {key} ...)")
    ssh = spec.ssh
    if (ssh.public_key is None) == (ssh.public_key_file is None):
        yield Issue("ssh.publicKey", "give exactly one of ssh.publicKey and ssh.publicKeyFile")


def secret_files(spec: StackSpec) -> dict[str, Optional[str]]:
    """The file each secret comes from, by its config key (None: from the secret config value)."""
    return {"sshPrivateKey": spec.ssh.private_key_file, "fenceKey": spec.fencing.key_file, "clusterAuthKey": spec.cluster.auth_key_file}


def check(spec: StackSpec | PartialStackSpec, ctx: Context = Context()) -> list[Issue]:
    """The issues of every rule that can judge SPEC. A rule that reads a key of a
    PartialStackSpec that did not validate cannot: all it found is left out, as it could
    be wrong (the key's own error is reported)."""
    issues: list[Issue] = []
    for r in RULES:
        try:
            issues += list(r(spec, ctx))
        except NotValidated:
            continue
    return issues
