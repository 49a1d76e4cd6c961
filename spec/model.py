"""What a user writes in stacks/Pulumi.<stack>.yaml, as typed, frozen models.

Field names are snake_case here and camelCase in the stack file (the Pulumi convention);
error paths always use the camelCase spelling the user wrote. Rules that relate several
fields live in spec/rules.py. No Pulumi import: this module decides, it does not act.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Optional
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

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

# A DNS label short enough to appear in every derived name (see spec/names.py).
Label = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*[a-z0-9]$|^[a-z]$", max_length=12)]
# Kernel interface names are at most 15 bytes (IFNAMSIZ 16 with the NUL).
InterfaceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=15)]
AbsolutePath = Annotated[str, Field(pattern=r"^/[A-Za-z0-9_.+@/-]*$")]


class Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=False,
        validate_default=True,
    )


def _libvirt_uri(uri: str) -> str:
    parts = urlsplit(uri)
    driver = parts.scheme.split("+", 1)[0]
    if driver not in ("qemu", "xen", "test") or parts.path not in ("/system", "/", "/default", ""):
        raise ValueError(
            "expected a libvirt URI such as qemu:///system, qemu+ssh://root@host/system, "
            "xen:///system or xen+ssh://root@dom0/"
        )
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
        return urlsplit(self.uri).scheme.split("+", 1)[0]

    @property
    def ssh_target(self) -> Optional[str]:
        """user@host for host-side commands, or None when the hypervisor is this machine."""
        parts = urlsplit(self.uri)
        if not parts.hostname:
            return None
        return f"{parts.username or 'root'}@{parts.hostname}"


class Network(Model):
    """The tenant's own L2 segment and its addresses.

    isolated: a libvirt network of its own (no uplink); vlan: a Linux bridge on
    TRUNK.VLAN made by this stack; ovs: ports tagged with the VLAN on an existing
    Open vSwitch bridge (network.bridge).
    """

    mode: NetworkMode = "vlan"
    # Also the tenant's number on a hypervisor: bridges and fence ports derive from it.
    vlan_id: int = Field(ge=1, le=4094)
    cidr: ipaddress.IPv4Network
    # The hypervisor's own address on the segment (SSH from the host, fence_virtd replies).
    host_address: Optional[ipaddress.IPv4Address] = None
    bridge: Optional[InterfaceName] = None


class Image(Model):
    """The one image every guest is made from."""

    # "builtin" is the Debian image built by image/build.sh; else the path of an image on
    # the machine running Pulumi, which the provider uploads into each hypervisor's pool.
    source: str = "builtin"
    os_family: OsFamily = "debian12"
    # direct: kernel and initrd (paths on the hypervisor), configured on the kernel
    # command line; bootloader: the image boots itself and carries its own config.
    boot: BootMode = "direct"
    kernel: Optional[AbsolutePath] = None
    initrd: Optional[AbsolutePath] = None
    format: ImageFormat = "qcow2"

    @property
    def has_selinux(self) -> bool:
        return self.os_family in ("rhel9", "centos5")


class GuestSize(Model):
    vcpu: int = Field(default=1, ge=1, le=64)
    memory_mib: int = Field(default=1024, ge=256, le=1048576)
    # Relative CPU weight (cputune shares; the Xen credit scheduler's weight).
    cpu_shares: Optional[int] = Field(default=None, ge=2, le=262144)
    # Upper bound in percent of one CPU (the Xen credit cap; a CFS quota on KVM).
    cpu_cap_percent: Optional[int] = Field(default=None, ge=1, le=6400)


class Members(GuestSize):
    """The cluster members: identical guests made from the image."""

    count: Optional[int] = Field(default=None, ge=1, le=16)
    names: Optional[list[Label]] = None
    addresses: Optional[list[ipaddress.IPv4Address]] = None
    hypervisor: Optional[Label] = None


class StorageServer(GuestSize):
    """Something that exports block devices: a guest we make, or an existing host."""

    name: Label
    kind: ServerKind = "guest"
    address: Optional[ipaddress.IPv4Address] = None
    hypervisor: Optional[Label] = None


class Export(Model):
    """One block device exported over IP to every member."""

    name: Label
    protocol: Protocol
    server: Label
    # A new raw disk of this size on a guest server; or an existing device on an external one.
    size_gib: Optional[int] = Field(default=None, ge=1, le=65536)
    device: Optional[AbsolutePath] = None
    port: Optional[int] = Field(default=None, ge=1, le=65535)


class Filesystem(Model):
    """GFS2 made once on a logical volume and mounted on every member."""

    fs_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=30)]
    # Default: one per member plus one spare for a member added later.
    journals: Optional[int] = Field(default=None, ge=1, le=128)
    mount_point: AbsolutePath
    mount_options: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_=.:/-]+$")]] = ["noatime"]
    selinux_context: Optional[Annotated[str, Field(pattern=r"^[a-z0-9_]+:[a-z0-9_]+:[a-z0-9_]+(:[a-z0-9,.:-]+)?$")]] = None
    # Normally derived as CLUSTER:FS; when given, CLUSTER must be this stack's cluster.
    lock_table: Optional[str] = None


class LogicalVolume(Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_+.-]*$", max_length=64)]
    size: Annotated[str, Field(pattern=r"^(\d+[MGT]|\d{1,3}%FREE)$")] = "100%FREE"
    filesystem: Optional[Filesystem] = None


class VolumeGroup(Model):
    """A clustered VG over one or more exports (from one or several servers)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_+.-]*$", max_length=64)]
    exports: list[Label] = Field(min_length=1)
    logical_volumes: list[LogicalVolume] = Field(min_length=1)


class Storage(Model):
    servers: list[StorageServer] = Field(min_length=1)
    exports: list[Export] = Field(min_length=1)
    volume_groups: list[VolumeGroup] = Field(min_length=1)


class Fencing(Model):
    method: FenceMethod = "fence_xvm"
    # fence_xvm: this tenant's fence_virtd listener; derived from network.vlanId when unset.
    port: Optional[int] = Field(default=None, ge=1024, le=65535)
    multicast_address: Optional[ipaddress.IPv4Address] = None
    # The only way to run without fencing; GFS2 then hangs on a member failure.
    lab_without_fencing: bool = False
    # The fence_xvm key, or the secret config value fenceKey (base64).
    key_file: Optional[str] = None


class Cluster(Model):
    # Default: TENANT-ENVIRONMENT.
    name: Optional[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=32)]] = None
    # Two-node quorum (corosync two_node / cman two_node); default on with two members.
    two_node: Optional[bool] = None
    # The corosync authkey, or the secret config value clusterAuthKey (base64).
    auth_key_file: Optional[str] = None


class Ssh(Model):
    user: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]*$")] = "root"
    # The private key, or the secret config value sshPrivateKey.
    private_key_file: Optional[str] = None
    public_key: Optional[str] = None
    public_key_file: Optional[str] = None


class PlatformRef(Model):
    """The platform stack (platform/) whose image pool and base image this stack uses."""

    stack: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class StackSpec(Model):
    """One tenant's cluster in one environment."""

    tenant: Label
    environment: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]*$", max_length=8)]
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



def config_keys() -> list[str]:
    """The stack config keys this program reads (camelCase, without the project prefix)."""
    return [field.alias or name for name, field in StackSpec.model_fields.items()]
