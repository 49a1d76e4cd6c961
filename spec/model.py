"""What a user writes in stacks/Pulumi.<stack>.yaml, as typed, frozen models.

Field names are snake_case here and camelCase in the stack file (the Pulumi convention);
error paths always use the camelCase spelling the user wrote. Rules that relate several
fields live in spec/rules.py. No Pulumi import: this module decides, it does not act.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any, Mapping, Optional

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from spec import libvirt_uri
from spec.gfs2 import mount_point_problem
from spec.keys import public_key_problem
from spec.paths import host_file_problem, host_path_problem, local_path_problem
from spec.vocabulary import (
    BootMode,
    DomainType,
    FenceMethod,
    Generation,
    ImageFormat,
    Management,
    NetworkMode,
    OsFamily,
    Protocol,
    SelinuxMode,
    ServerKind,
)

@dataclass(frozen=True)
class Meaning:
    """What a constrained string must be, in words, for the error message of one that is not."""

    text: str


def text(pattern: str, meaning: str, max_length: Optional[int] = None) -> Any:
    r"""A string type matching PATTERN, with [0-9] for digits (pydantic's \d matches the
    digits of every script); MEANING is what the error message says the value must be."""
    return Annotated[str, Field(pattern=pattern, max_length=max_length), Meaning(meaning)]


def _checked(problem_of, hidden: bool = False):
    """An AfterValidator from a function returning the problem with a value (or None).
    HIDDEN: the error never quotes the value (it may be key material)."""

    def check(value: str) -> str:
        problem = problem_of(value)
        if problem is not None:
            if hidden:
                raise PydanticCustomError("hidden_value", problem)
            raise ValueError(problem)
        return value

    return AfterValidator(check)


def _whole_number(value: Any) -> Any:
    """Whole numbers as YAML writes them, or as ASCII digits in a string (how
    `pulumi config set --path` stores them); never a boolean, a fraction, or digits of
    another script."""
    if isinstance(value, bool):
        raise ValueError("expected a whole number, not true or false")
    if isinstance(value, float):
        raise ValueError("expected a whole number, without a fraction")
    if isinstance(value, str):
        if re.fullmatch(r"[0-9]{1,12}", value.strip()):
            return int(value.strip())
        raise ValueError("expected a whole number written with the digits 0-9")
    return value


Int = Annotated[int, BeforeValidator(_whole_number)]


def _address_text(value: Any) -> Any:
    """Addresses as dotted text only: pydantic would take true as 0.0.0.1 and 167772161 as 10.0.0.1."""
    if not isinstance(value, str):
        raise ValueError("expected an address written as text, such as 10.77.10.5 (or a network, 10.77.10.0/24)")
    return value


IPv4Address = Annotated[ipaddress.IPv4Address, BeforeValidator(_address_text)]
IPv4Network = Annotated[ipaddress.IPv4Network, BeforeValidator(_address_text)]
# A DNS label short enough to appear in every derived name (see spec/names.py).
Label = text(
    r"^[a-z][a-z0-9-]*[a-z0-9]$|^[a-z]$",
    "a short lowercase name: letters a-z, digits 0-9 and '-', starting with a letter, not ending with '-'",
    12,
)
# Kernel interface names are at most 15 bytes (IFNAMSIZ 16 with the NUL).
InterfaceName = Annotated[
    text(r"^[A-Za-z0-9_.-]+$", "an interface name: letters, digits, '_', '.' and '-'", 15),
    _checked(lambda name: "'.' and '..' are not interface names" if name in (".", "..") else None),
]
# Absolute, plainly written paths of files and devices on a hypervisor or guest.
HostFile = Annotated[str, _checked(host_file_problem)]
# Files on the machine running Pulumi: absolute, ~/..., or relative to the project.
LocalPath = Annotated[str, _checked(local_path_problem)]
LvmName = text(
    r"^[A-Za-z0-9_][A-Za-z0-9_+.-]*$",
    "an LVM name: letters, digits and _ + . -, not starting with '-' or '.'",
    64,
)
# lvcreate refuses these LV names, and names holding the suffixes of its internal volumes.
LVM_RESERVED_NAMES = ("snapshot", "pvmove")
LVM_RESERVED_PARTS = (
    "_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_iorig", "_mimage", "_mlog", "_pmspare", "_rimage",
    "_rmeta", "_tdata", "_tmeta", "_vdata", "_vorigin", "_wcorig",
)


def _lv_name_problem(name: str) -> Optional[str]:
    if name.startswith(LVM_RESERVED_NAMES):
        return f"names starting with {' or '.join(LVM_RESERVED_NAMES)} are LVM's own; choose another"
    part = next((p for p in LVM_RESERVED_PARTS if p in name), None)
    if part is not None:
        return f"{part} marks LVM's internal volumes, so lvcreate refuses it in a name; choose another"
    return None


LvName = Annotated[LvmName, _checked(_lv_name_problem)]
Environment = text(r"^[a-z][a-z0-9]*$", "lowercase letters and digits, starting with a letter", 8)
FsName = text(r"^[A-Za-z0-9_-]+$", "a GFS2 name: letters, digits, '_' and '-'", 30)
MountOption = text(r"^[A-Za-z0-9_=.:/-]+$", "one mount option: letters, digits and _ = . : / -", 64)
SelinuxContext = text(
    r"^[a-z0-9_]+:[a-z0-9_]+:[a-z0-9_]+(:[a-z0-9,.:-]+)?$",
    "an SELinux context USER:ROLE:TYPE[:LEVEL], e.g. system_u:object_r:httpd_sys_content_t:s0",
    255,
)
LockTable = text(r"^[A-Za-z0-9_:-]+$", "CLUSTER:FS (letters, digits, '_' and '-')", 64)
ClusterName = text(r"^[A-Za-z0-9_-]+$", "a cluster name: letters, digits, '_' and '-'", 32)
UserName = text(r"^[a-z_][a-z0-9_-]*$", "a login name: lowercase letters, digits, '_' and '-'", 32)
StackRef = text(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", "ORGANIZATION/PROJECT/STACK", 200)


class Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=False,
        validate_default=True,
    )


def _libvirt_uri(uri: str) -> str:
    problems = libvirt_uri.problems(uri)
    if problems:
        # A URI with a password is never quoted, not even with the password replaced.
        kind = "hidden_value" if any("password" in p for p in problems) else "value_error"
        raise PydanticCustomError(kind, "; ".join(problems))
    return uri


class Hypervisor(Model):
    """A libvirt host that runs guests of this stack."""

    name: Label
    uri: Annotated[str, AfterValidator(_libvirt_uri)]
    domain_type: DomainType = "kvm"
    # Physical interface carrying tenant VLANs (network.mode vlan).
    trunk: Optional[InterfaceName] = None

    @property
    def driver(self) -> str:
        return libvirt_uri.parse(self.uri).driver


class Network(Model):
    """The tenant's own L2 segment and its addresses.

    isolated: a libvirt network of its own (no uplink); vlan: a Linux bridge on
    TRUNK.VLAN made by this stack; ovs: ports tagged with the VLAN on an existing
    Open vSwitch bridge (network.bridge).
    """

    mode: NetworkMode = "vlan"
    # Also the tenant's number on a hypervisor: bridges and fence ports derive from it.
    vlan_id: Int = Field(ge=1, le=4094)
    cidr: IPv4Network
    # The hypervisor's own address on the segment (SSH from the host, fence_virtd replies).
    host_address: Optional[IPv4Address] = None
    bridge: Optional[InterfaceName] = None


def _image_source_problem(source: str) -> Optional[str]:
    if source == "builtin":
        return None
    problem = local_path_problem(source, absolute=True)
    if problem is not None:
        return f"must be builtin or an absolute path on the machine running Pulumi (the provider uploads it): {problem}"
    return None


# "builtin" is the Debian image built by image/build.sh; else the path of an image on the
# machine running Pulumi, which the provider uploads into each hypervisor's pool.
ImageSource = Annotated[str, _checked(_image_source_problem)]


class Image(Model):
    """The one image every guest is made from."""

    source: ImageSource = "builtin"
    os_family: OsFamily = "debian12"
    # direct: kernel and initrd (paths on the hypervisor), configured on the kernel
    # command line; bootloader: the image boots itself and carries its own config.
    boot: BootMode = "direct"
    kernel: Optional[HostFile] = None
    initrd: Optional[HostFile] = None
    format: ImageFormat = "qcow2"

    @property
    def has_selinux(self) -> bool:
        return self.os_family in ("rhel9", "centos5")


class GuestSize(Model):
    vcpu: Int = Field(default=1, ge=1, le=64)
    memory_mib: Int = Field(default=1024, ge=256, le=1048576)
    # Relative CPU weight (cputune shares; the Xen credit scheduler's weight).
    cpu_shares: Optional[Int] = Field(default=None, ge=2, le=262144)
    # Upper bound in percent of one CPU (the Xen credit cap; a CFS quota on KVM).
    cpu_cap_percent: Optional[Int] = Field(default=None, ge=1, le=6400)


class Members(GuestSize):
    """The cluster members: identical guests made from the image."""

    count: Optional[Int] = Field(default=None, ge=1, le=16)
    names: Optional[list[Label]] = None
    addresses: Optional[list[IPv4Address]] = None
    hypervisor: Optional[Label] = None


class StorageServer(GuestSize):
    """Something that exports block devices: a guest we make, or an existing host."""

    name: Label
    kind: ServerKind = "guest"
    address: Optional[IPv4Address] = None
    hypervisor: Optional[Label] = None


class Export(Model):
    """One block device exported over IP to every member."""

    name: Label
    protocol: Protocol
    server: Label
    # A new raw disk of this size on a guest server; or an existing device on an external one.
    size_gib: Optional[Int] = Field(default=None, ge=1, le=65536)
    device: Optional[HostFile] = None
    port: Optional[Int] = Field(default=None, ge=1, le=65535)


def _mount_point_problem(path: str) -> Optional[str]:
    return host_path_problem(path) or mount_point_problem(path)


# What lvcreate takes here: -L with a binary unit, or -l N%FREE for the last volume.
LV_FIXED = re.compile(r"^([0-9]+)([MGT])$")
LV_PERCENT = re.compile(r"^([0-9]+)%([A-Z]+)$")
LV_SIZE_FORMS = "a size such as 500M, 150G or 2T (MiB, GiB, TiB), or N%FREE (1 to 100) for the last logical volume"
MAX_SIZE_DIGITS = 9


def _lv_size_problem(size: str) -> Optional[str]:
    fixed, percent = LV_FIXED.match(size), LV_PERCENT.match(size)
    if fixed:
        if int(fixed.group(1)) == 0:
            return "is zero: a logical volume needs at least one 4M extent; " + LV_SIZE_FORMS
        if len(fixed.group(1).lstrip("0")) > MAX_SIZE_DIGITS:
            return f"is absurdly large (more than {MAX_SIZE_DIGITS} digits); " + LV_SIZE_FORMS
        return None
    if percent:
        number, of = int(percent.group(1)), percent.group(2)
        if of != "FREE":
            return f"%{of} sizes are not used here (the volume group's step runs lvcreate -l only for %FREE); " + LV_SIZE_FORMS
        if not 1 <= number <= 100:
            return f"{number}%FREE is outside 1 to 100 (percent of the space left); " + LV_SIZE_FORMS
        return None
    return "must be " + LV_SIZE_FORMS


class Filesystem(Model):
    """GFS2 made once on a logical volume and mounted on every member."""

    fs_name: FsName
    # Default: one per member plus one spare for a member added later.
    journals: Optional[Int] = Field(default=None, ge=1, le=128)
    mount_point: Annotated[str, _checked(_mount_point_problem)]
    # Option by option; what each means is checked in spec/rules.py (spec/gfs2.py).
    mount_options: list[MountOption] = ["noatime"]
    selinux_context: Optional[SelinuxContext] = None
    # Normally derived as CLUSTER:FS; when given, CLUSTER must be this stack's cluster.
    lock_table: Optional[LockTable] = None


class LogicalVolume(Model):
    name: LvName
    size: Annotated[str, _checked(_lv_size_problem)] = "100%FREE"
    filesystem: Optional[Filesystem] = None


class VolumeGroup(Model):
    """A clustered VG over one or more exports (from one or several servers)."""

    name: LvmName
    exports: list[Label] = Field(min_length=1)
    logical_volumes: list[LogicalVolume] = Field(min_length=1)


class Storage(Model):
    servers: list[StorageServer] = Field(min_length=1)
    exports: list[Export] = Field(min_length=1)
    volume_groups: list[VolumeGroup] = Field(min_length=1)


class Fencing(Model):
    method: FenceMethod = "fence_xvm"
    # fence_xvm: this tenant's fence_virtd listener; derived from network.vlanId when unset.
    port: Optional[Int] = Field(default=None, ge=1024, le=65535)
    multicast_address: Optional[IPv4Address] = None
    # The only way to run without fencing; GFS2 then hangs on a member failure.
    lab_without_fencing: bool = False
    # The fence_xvm key, or the secret config value fenceKey (base64).
    key_file: Optional[LocalPath] = None


class Cluster(Model):
    # Default: TENANT-ENVIRONMENT.
    name: Optional[ClusterName] = None
    # Two-node quorum (corosync two_node / cman two_node); default on with two members.
    two_node: Optional[bool] = None
    # The corosync authkey, or the secret config value clusterAuthKey (base64).
    auth_key_file: Optional[LocalPath] = None


class Ssh(Model):
    user: UserName = "root"
    # The private key, or the secret config value sshPrivateKey.
    private_key_file: Optional[LocalPath] = None
    # One line of a .pub file; it reaches the guests on their kernel command line.
    public_key: Optional[Annotated[str, _checked(public_key_problem, hidden=True)]] = None
    public_key_file: Optional[LocalPath] = None


class PlatformRef(Model):
    """The platform stack (platform/) whose image pool and base image this stack uses."""

    stack: StackRef


class StackSpec(Model):
    """One tenant's cluster in one environment."""

    tenant: Label
    environment: Environment
    # legacy: RHEL/CentOS 5-6 (cman, GNBD, clvmd, luci/ricci); current: corosync 3 + pacemaker.
    generation: Generation = "current"
    hypervisors: list[Hypervisor] = Field(min_length=1)
    network: Network
    image: Image = Image()
    members: Members
    storage: Storage
    fencing: Fencing = Fencing()
    # Default: enforcing where the image has SELinux.
    selinux: Optional[SelinuxMode] = None
    management: Management = "none"
    ssh: Ssh = Ssh()
    cluster: Cluster = Cluster()
    # Volumes and file systems holding user data are protected unless this is false.
    protect_data: bool = True
    # Shared hypervisors: the image pool and base image come from the platform stack.
    platform: Optional[PlatformRef] = None


class NotValidated(Exception):
    """A top-level key of the stack that did not validate was read: whatever reads it
    cannot be judged (the key's own error says what is wrong)."""


class PartialStackSpec:
    """The top-level keys of a stack config that validated, read like a StackSpec's
    fields; reading one that did not (nor took its default in its place) raises
    NotValidated. Lets the rules judge what they can of a stack with model errors."""

    def __init__(self, config: Mapping[str, Any], invalid: frozenset[str]):
        valid = _model_without(invalid).model_validate({k: v for k, v in config.items() if k not in invalid})
        vars(self).update(valid)

    # Called only for what __init__ did not set.
    def __getattr__(self, name: str) -> Any:
        if name in StackSpec.model_fields:
            raise NotValidated(name)
        raise AttributeError(name)


@functools.cache
def _model_without(keys: frozenset[str]) -> type[Model]:
    """StackSpec without the fields of the config keys KEYS."""
    fields = {n: (f.annotation, f) for n, f in StackSpec.model_fields.items() if (f.alias or n) not in keys}
    return create_model("StackSpecPart", __base__=Model, **fields)


def config_keys() -> list[str]:
    """The stack config keys this program reads (camelCase, without the project prefix)."""
    return [field.alias or name for name, field in StackSpec.model_fields.items()]
