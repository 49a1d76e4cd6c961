"""The policy pack's rules, as pure functions over a stack's resources.

Each rule takes the resources a preview registers (type, name, inputs, provider URI) and
the pack's config, and returns its violations. The spec already refuses most of these
inputs; the pack is the second line of defence for any program in the organisation and
for what no single stack can see (the platform's registry of tenants).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from lxml import etree

from render.script import values_of

COMMANDS = ("command:remote:Command", "command:local:Command")
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


class _Unknown:
    """A value a preview cannot know yet; rules judge what is known and leave the rest to
    the same rules at `pulumi up`, when every value is known."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    props: dict


@dataclass(frozen=True)
class Tenant:
    """One entry of the platform's registry: who owns a VLAN id and fence port where."""

    hypervisor: str
    stack_id: str
    vlan_id: int
    fence_port: int


@dataclass(frozen=True)
class PackConfig:
    registry: tuple[Tenant, ...] = ()


@dataclass(frozen=True)
class Step:
    """A node script of the stack, with its rendered values."""

    resource: Resource
    values: dict = field(hash=False)

    @property
    def name(self) -> str:
        return self.values.get("STEP", "")


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get("4dabf18193072939515e22adb298388d") == SECRET_SIG


def _reveal(value: Any) -> Any:
    """What a secret holds: connections are secret as a whole (their private key)."""
    return value["value"] if _is_secret(value) else value


def steps(resources: list[Resource]) -> list[Step]:
    out = []
    for r in resources:
        create = r.props.get("create")
        if r.type in COMMANDS and isinstance(create, str):
            out.append(Step(r, values_of(create)))
    return out


def steps_named(resources: list[Resource], pattern: str) -> list[Step]:
    return [s for s in steps(resources) if re.fullmatch(pattern, s.name)]


def _members(resources: list[Resource]) -> set[str]:
    """Members are the nodes that set up clustered LVM locking: they mount GFS2."""
    return {_reveal(s.resource.props["connection"])["host"] for s in steps_named(resources, "lvmlockd|clvmd")}


Rule = Callable[[list[Resource], PackConfig], list[str]]


def every_member_is_fenced(resources: list[Resource], config: PackConfig) -> list[str]:
    """Each cluster node has a fence device: stonith for pacemaker, a fence method in
    cluster.conf for cman. A member that cannot be fenced can corrupt GFS2."""
    problems = []
    for step in steps_named(resources, "corosync"):
        nodes = re.findall(r"^\s*name: (\S+)$", step.values["COROSYNC_CONF"], re.M)
        fenced = set()
        # Each member's device is a pacemaker stage of its own, applied before it joins.
        for device in steps_named(resources, "fence-.+|cluster-ready"):
            stage = etree.fromstring(device.values.get("STAGE", "<stage/>"))
            for nvpair in stage.iterfind(".//primitive[@class='stonith']//nvpair[@name='pcmk_host_list']"):
                fenced |= set(nvpair.get("value").split())
        problems += [f"member {n} has no stonith device" for n in nodes if n not in fenced]
        break
    for step in steps_named(resources, "cman")[:1]:
        conf = etree.fromstring(step.values["CLUSTER_CONF"].encode())
        for node in conf.iterfind("clusternodes/clusternode"):
            if node.find("fence/method/device") is None:
                problems.append(f"cluster node {node.get('name')} has no fence device in cluster.conf")
    return problems


def journals_cover_members(resources: list[Resource], config: PackConfig) -> list[str]:
    """GFS2 needs one journal per member that mounts it."""
    members = len(_members(resources))
    return [
        f"{s.values['LOCK_TABLE']}: {s.values['JOURNALS']} journals for {members} members"
        for s in steps_named(resources, "mkfs-.*")
        if int(s.values["JOURNALS"]) < members
    ]


def shared_disks_are_raw_and_uncached(resources: list[Resource], config: PackConfig) -> list[str]:
    """A disk under a cluster file system is raw with cache='none': no host page cache
    may hold writes another member cannot see."""
    volumes = {r.name: r for r in resources if r.type == "libvirt:index/volume:Volume"}
    by_id = {f"{r.name}-id": r for r in volumes.values()}
    problems = []
    for r in resources:
        if r.type != "libvirt:index/domain:Domain":
            continue
        data = [d for d in r.props.get("disks", [])[1:] if d.get("volumeId")]
        if not data:
            continue
        xslt = (r.props.get("xml") or {}).get("xslt", "")
        for needle, what in (('cache="none"', "cache='none'"), ('type="raw"', "a raw driver"), ("shareable", "shareable")):
            if needle not in xslt:
                problems.append(f"{r.props.get('name')}: its data disks are not given {what}")
        # In a preview volume ids are unknown: a domain's data volumes are then its
        # component's volumes other than the root (components/guest.py names them).
        prefix = r.name.removesuffix("-domain") + "-"
        unknown = [v for n, v in volumes.items() if n.startswith(prefix) and n != prefix + "root"]
        for d in data:
            known = d["volumeId"] is not UNKNOWN
            for vol in [volumes.get(d["volumeId"]) or by_id.get(d["volumeId"])] if known else unknown:
                if vol is None or vol.props.get("format") == "raw":
                    continue
                problems.append(f"{vol.props.get('name')}: a shared disk must be raw, not {vol.props.get('format')}")
    return sorted(set(problems), key=problems.index)


def no_secret_in_command_text(resources: list[Resource], config: PackConfig) -> list[str]:
    """Command text is shown in logs and errors: secrets belong on stdin."""
    problems = []
    for r in resources:
        if r.type not in COMMANDS:
            continue
        stdin = r.props.get("stdin")
        stdin_text = stdin.get("value") if _is_secret(stdin) else stdin
        for prop in ("create", "update", "delete"):
            value = r.props.get(prop)
            if _is_secret(value):
                problems.append(f"{r.name}: its {prop} text holds a secret")
            elif isinstance(value, str):
                if PRIVATE_KEY.search(value):
                    problems.append(f"{r.name}: its {prop} text holds a private key")
                if isinstance(stdin_text, str) and len(stdin_text) >= 16 and stdin_text in value:
                    problems.append(f"{r.name}: its {prop} text repeats what it sends on stdin")
    return problems


def _remote(uri: Optional[str]) -> bool:
    return bool(uri and urlsplit(uri).hostname)


def remote_stacks_name_a_vlan(resources: list[Resource], config: PackConfig) -> list[str]:
    """A shared hypervisor carries several tenants: a stack there needs its own VLAN."""
    providers = [r for r in resources if r.type == "pulumi:providers:libvirt"]
    if not any(_remote(p.props.get("uri")) for p in providers):
        return []
    tagged = any(
        "<vlan" in (r.props.get("xml") or {}).get("xslt", "")
        for r in resources
        if r.type == "libvirt:index/domain:Domain"
    )
    problems = [
        f"{r.props.get('name')}: an isolated network on a shared hypervisor"
        for r in resources
        if r.type == "libvirt:index/network:Network"
    ]
    if not (steps_named(resources, "tenant-network") or tagged):
        problems.append("the stack runs on a remote hypervisor but names no VLAN")
    return problems


def _this_tenant(resources: list[Resource]) -> list[Tenant]:
    """(hypervisor, stack, VLAN, fence port) from the stack's fence_virtd step."""
    return [
        Tenant(
            _reveal(s.resource.props.get("connection", {})).get("host", "localhost"),
            s.values["DIR"].rstrip("/").rsplit("/", 1)[1],
            int(s.values["VLAN_ID"]),
            int(s.values["PORT"]),
        )
        for s in steps_named(resources, "fence-listener")
    ]


def tenants_do_not_share_vlans_or_fence_ports(resources: list[Resource], config: PackConfig) -> list[str]:
    """On one hypervisor, a VLAN id and a fence port belong to one tenant, as the
    platform's registry says."""
    problems = []
    for me in _this_tenant(resources):
        mine = [t for t in config.registry if t.stack_id == me.stack_id and t.hypervisor == me.hypervisor]
        # A lab on the machine running Pulumi has no platform, so no registry: it shares
        # its hypervisor with no registered tenant.
        if not config.registry and me.hypervisor == "localhost":
            continue
        if not mine:
            problems.append(f"{me.stack_id} is not in the platform's registry of tenants on {me.hypervisor}")
        elif (mine[0].vlan_id, mine[0].fence_port) != (me.vlan_id, me.fence_port):
            problems.append(
                f"{me.stack_id} uses VLAN {me.vlan_id} and fence port {me.fence_port}; "
                f"the registry gives it VLAN {mine[0].vlan_id} and port {mine[0].fence_port}"
            )
        for other in config.registry:
            if other.hypervisor != me.hypervisor or other.stack_id == me.stack_id:
                continue
            if other.vlan_id == me.vlan_id:
                problems.append(f"VLAN {me.vlan_id} on {me.hypervisor} also belongs to {other.stack_id}")
            if other.fence_port == me.fence_port:
                problems.append(f"fence port {me.fence_port} on {me.hypervisor} also belongs to {other.stack_id}")
    return problems


RULES: dict[str, tuple[Rule, str]] = {
    "every-member-is-fenced": (every_member_is_fenced, "Every cluster member has a fence device."),
    "journals-cover-members": (journals_cover_members, "GFS2 has at least one journal per member."),
    "shared-disks-raw-uncached": (shared_disks_are_raw_and_uncached, "Shared disks are raw with cache='none'."),
    "no-secret-in-command-text": (no_secret_in_command_text, "No command text contains a secret."),
    "remote-stacks-name-a-vlan": (remote_stacks_name_a_vlan, "Stacks on remote hypervisors have their own VLAN."),
    "tenants-do-not-share-vlans-or-fence-ports": (
        tenants_do_not_share_vlans_or_fence_ports,
        "No two tenants share a VLAN id or fence port on one hypervisor.",
    ),
}


def pack_config(raw: dict) -> PackConfig:
    """The pack's config (pulumi preview --policy-pack-config FILE): {"registry": [...]}."""
    return PackConfig(
        tuple(
            Tenant(t["hypervisor"], t["stackId"], int(t["vlanId"]), int(t["fencePort"]))
            for t in (raw.get("tenants-do-not-share-vlans-or-fence-ports") or {}).get("registry", [])
        )
    )
