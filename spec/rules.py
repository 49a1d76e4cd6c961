"""Rules that relate several fields of a StackSpec.

Each rule yields Issues: the camelCase key path the user wrote and what is allowed.
They all run (one run reports every problem) before any resource is registered.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from spec.model import StackSpec
from spec.names import FENCE_PORT_BASE, Names
from spec.vocabulary import SECRET_KEYS

GFS2_MAX_NODES = 16
# cman keeps the cluster name in a 16-byte field.
CMAN_CLUSTER_NAME_MAX = 15
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


def member_count(spec: StackSpec) -> int:
    m = spec.members
    if m.names is not None:
        return len(m.names)
    return m.count if m.count is not None else 3


def member_names(spec: StackSpec) -> list[str]:
    return list(spec.members.names or [f"m{i + 1}" for i in range(member_count(spec))])


def cluster_name(spec: StackSpec) -> str:
    return spec.cluster.name or Names(spec.tenant, spec.environment, spec.network.vlan_id).cluster


def _duplicates(values: Iterable) -> set:
    return {v for v, n in Counter(values).items() if n > 1}


@rule
def members_shape(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    m = spec.members
    if m.count is not None and m.names is not None and m.count != len(m.names):
        yield Issue("members.count", f"is {m.count} but members.names lists {len(m.names)}; give one of them")
    n = member_count(spec)
    if n < 2:
        yield Issue("members", "a cluster needs at least 2 members")
    if n > GFS2_MAX_NODES:
        yield Issue("members", f"GFS2 supports at most {GFS2_MAX_NODES} members, got {n}")
    if m.addresses is not None and len(m.addresses) != n:
        yield Issue("members.addresses", f"lists {len(m.addresses)} addresses for {n} members")
    if m.names is not None:
        for name in sorted(_duplicates(m.names)):
            yield Issue("members.names", f"{name!r} appears twice")


# The Xen credit scheduler's weight is 16 bits.
XEN_MAX_WEIGHT = 65535


@rule
def cpu_limits(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    hv = {h.name: h for h in spec.hypervisors}
    guests = [("members", spec.members, spec.members.hypervisor)] + [
        (f"storage.servers[{i}]", s, s.hypervisor) for i, s in enumerate(spec.storage.servers)
    ]
    for path, g, where in guests:
        if g.cpu_cap_percent is not None and g.cpu_cap_percent > 100 * g.vcpu:
            yield Issue(f"{path}.cpuCapPercent", f"{g.cpu_cap_percent}% is more than {g.vcpu} vCPU can use ({100 * g.vcpu}%)")
        on_xen = hv.get(where, spec.hypervisors[0]).domain_type == "xen"
        if on_xen and g.cpu_shares is not None and g.cpu_shares > XEN_MAX_WEIGHT:
            yield Issue(f"{path}.cpuShares", f"the Xen credit scheduler's weight is at most {XEN_MAX_WEIGHT}")


@rule
def hypervisor_references(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    names = [h.name for h in spec.hypervisors]
    for name in sorted(_duplicates(names)):
        yield Issue("hypervisors", f"name {name!r} appears twice")
    for i, h in enumerate(spec.hypervisors):
        if h.domain_type == "xen" and h.driver != "xen":
            yield Issue(f"hypervisors[{i}].uri", f"domainType xen needs a xen:// or xen+ssh:// URI, got {h.uri}")
        if h.domain_type in ("qemu", "kvm") and h.driver != "qemu":
            yield Issue(f"hypervisors[{i}].uri", f"domainType {h.domain_type} needs a qemu:// or qemu+ssh:// URI, got {h.uri}")
        if spec.network.mode == "vlan" and h.trunk is None:
            yield Issue(f"hypervisors[{i}].trunk", "network.mode vlan needs the interface that carries the VLANs")
        if h.trunk is not None and len(Names(spec.tenant, spec.environment, spec.network.vlan_id).vlan_interface(h.trunk)) > 15:
            yield Issue(f"hypervisors[{i}].trunk", f"{h.trunk}.{spec.network.vlan_id} is longer than 15 characters")
    refs = [("members.hypervisor", spec.members.hypervisor)] + [
        (f"storage.servers[{i}].hypervisor", s.hypervisor) for i, s in enumerate(spec.storage.servers)
    ]
    for path, ref in refs:
        if ref is not None and ref not in names:
            yield Issue(path, f"no hypervisor named {ref!r}; known: {', '.join(names)}")


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
            cluster, sep, fs_name = fs.lock_table.partition(":")
            if not sep or cluster != name or fs_name != fs.fs_name:
                yield Issue(at, f"must be {name}:{fs.fs_name} (CLUSTER:FS with this stack's cluster name), got {fs.lock_table!r}")


@rule
def quorum(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    n = member_count(spec)
    if n == 2 and spec.cluster.two_node is False:
        yield Issue("cluster.twoNode", "two members keep quorum only with two-node mode; remove twoNode: false")
    if n != 2 and spec.cluster.two_node:
        yield Issue("cluster.twoNode", f"two-node mode is for exactly 2 members, this stack has {n}")


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
        yield Issue("fencing.multicastAddress", f"{f.multicast_address} is not a multicast address (224.0.0.0/4)")
    if f.method == "fence_virsh" and spec.generation == "legacy":
        yield Issue("fencing.method", "fence_virsh is not a fence agent of RHEL/CentOS 5 clusters; use fence_xvm")
    if f.method == "fence_virsh" and spec.network.mode == "vlan":
        yield Issue(
            "fencing.method",
            "fence_virsh gives members a hypervisor login that can stop any guest on it; "
            "on a shared hypervisor (network.mode vlan) use fence_xvm",
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
            mounts.append((f"{at}.mountPoint", fs.mount_point))
            fs_names.append((f"{at}.fsName", fs.fs_name))
    for label, pairs in (("mount point", mounts), ("file system name", fs_names)):
        dup = _duplicates(v for _, v in pairs)
        for path, value in pairs:
            if value in dup:
                yield Issue(path, f"{label} {value!r} is used twice")


def resolved_selinux(spec: StackSpec) -> str:
    if spec.selinux is not None:
        return spec.selinux
    return "enforcing" if spec.image.has_selinux else "disabled"


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
        if s.name in members:
            yield Issue(f"storage.servers[{i}].name", f"{s.name!r} is also a member name")
        if s.kind == "external" and s.address is None:
            yield Issue(f"storage.servers[{i}].address", "an external server needs its address")
    for i, e in enumerate(st.exports):
        server = servers.get(e.server)
        if server is None:
            yield Issue(f"storage.exports[{i}].server", f"no storage server named {e.server!r}; known: {', '.join(servers)}")
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
                yield Issue(f"storage.volumeGroups[{i}].exports[{j}]", f"no export named {name!r}; known: {', '.join(sorted(exports))}")
            elif used[name] == 2:
                yield Issue(f"storage.volumeGroups[{i}].exports[{j}]", f"export {name!r} is already in another volume group")
        for name in sorted(_duplicates(lv.name for lv in vg.logical_volumes)):
            yield Issue(f"storage.volumeGroups[{i}].logicalVolumes", f"logical volume {name!r} appears twice")
        for j, lv in enumerate(vg.logical_volumes[:-1]):
            if lv.size.endswith("%FREE"):
                yield Issue(
                    f"storage.volumeGroups[{i}].logicalVolumes[{j}].size",
                    "a %FREE size takes what is left, so only the last logical volume may use it",
                )


# The hypervisor's key in planned_addresses(); no label can contain "@".
HOST = "@host"
# Offsets inside network.cidr for addresses the user did not give.
HOST_OFFSET = 1
SERVER_OFFSET = 10
MEMBER_OFFSET = 20


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


@rule
def addresses(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    net = spec.network
    if net.cidr.num_addresses < 8:
        yield Issue("network.cidr", f"{net.cidr} is too small for a host, servers and members")
        return
    external = {s.name for s in spec.storage.servers if s.kind == "external"}
    planned = planned_addresses(spec)
    on_net = [(owner, path, a) for owner, (path, a) in planned.items() if owner not in external]
    for owner, path, a in on_net:
        if a not in net.cidr:
            yield Issue(path, f"{a} ({owner}) is outside network.cidr {net.cidr}")
        elif a in (net.cidr.network_address, net.cidr.broadcast_address):
            yield Issue(path, f"{a} is the network or broadcast address of {net.cidr}")
    dup = _duplicates(a for _, _, a in on_net)
    for owner, path, a in on_net:
        if a in dup:
            yield Issue(path, f"{a} ({owner}) is used twice")


@rule
def network_mode(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    net = spec.network
    if net.mode == "ovs" and net.bridge is None:
        yield Issue("network.bridge", "network.mode ovs needs the name of the existing Open vSwitch bridge")


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
            if h.ssh_target is not None:
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
    if img.source != "builtin" and not img.source.startswith("/"):
        yield Issue("image.source", f"must be builtin or an absolute path on the hypervisor, got {img.source!r}")
    if img.source == "builtin" and img.os_family != "debian12":
        yield Issue("image.osFamily", "the builtin image is debian12; give image.source for other families")
    if img.boot == "direct" and img.source != "builtin":
        for key in ("kernel", "initrd"):
            if getattr(img, key) is None:
                yield Issue(f"image.{key}", "direct boot from your own image needs the kernel and initrd paths")
    if img.boot == "bootloader" and img.source == "builtin":
        yield Issue("image.boot", "the builtin image boots directly (kernel and initrd beside the disk)")


@rule
def secrets(spec: StackSpec, ctx: Context) -> Iterator[Issue]:
    sources = {
        "sshPrivateKey": spec.ssh.private_key_file,
        "fenceKey": spec.fencing.key_file,
        "clusterAuthKey": spec.cluster.auth_key_file,
    }
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


def check(spec: StackSpec, ctx: Context = Context()) -> list[Issue]:
    return [issue for r in RULES for issue in r(spec, ctx)]
