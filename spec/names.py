"""Every name the program gives to something, derived in one place.

Names are built from tenant, environment, role and index (or the tenant's VLAN id where
a hypervisor-wide name must be short), so a reader can predict any of them and two
tenants on one hypervisor can never collide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "g2"
# A tenant's own bridge on a hypervisor: PREFIX + "br" + its VLAN id (15 bytes at most).
BRIDGE_PREFIX = f"{PREFIX}br"
# A date-based IQN naming authority; the year of the seed.
IQN_AUTHORITY = "iqn.2007-09.org.gfs2-cluster"
# Where libvirt's QEMU driver (system instance) keeps its per-domain logs on a hypervisor.
QEMU_LOG_DIR = "/var/log/libvirt/qemu"
# Where a stack without a platform keeps its volumes on a hypervisor (its own pool).
POOL_ROOT = "/var/lib/libvirt/gfs2-cluster"
# A guest's data disks as its domain has them: the provider names disks vda, vdb, ... in
# order, vda is the root disk, and seven is what a storage server gets here.
DATA_DISK_DEVICES = ("vdb", "vdc", "vdd", "vde", "vdf", "vdg", "vdh")
# What the pacemaker CIB derives from a resource's id: ID-clone, ID-instance_attributes-...,
# ID-OP-interval-... (render/pacemaker.py).
CIB_DERIVED = ("clone", "instance_attributes", "meta_attributes", "start", "stop", "monitor")


def console_log(domain: str) -> str:
    """The file on the hypervisor that a domain's serial console is logged to (the
    ``<log>`` of its console in render/domain.py; the boot watch reads it). Beside
    libvirt's own DOMAIN.log, which holds QEMU's command line and errors."""
    return f"{QEMU_LOG_DIR}/{domain}-console.log"


def xml_id(*parts: str) -> str:
    """A valid XML ID (an NCName) from name parts; characters it cannot hold become _."""
    text = re.sub(r"[^A-Za-z0-9_.-]", "_", "-".join(parts))
    return text if re.match(r"[A-Za-z_]", text) else f"_{text}"


def lvm_resource_id(vg: str) -> str:
    """The pacemaker LVM-activate resource of volume group VG."""
    return xml_id("lvm", vg)


def fs_resource_id(fs_name: str) -> str:
    """The pacemaker Filesystem resource of file system FS_NAME."""
    return xml_id("fs", fs_name)


@dataclass(frozen=True)
class Names:
    tenant: str
    environment: str
    vlan_id: int

    @property
    def stack_id(self) -> str:
        return f"{self.tenant}-{self.environment}"

    def domain(self, guest: str) -> str:
        """libvirt domain of a member or storage server (guest: its short name)."""
        return f"{PREFIX}-{self.stack_id}-{guest}"

    def root_volume(self, guest: str) -> str:
        return f"{self.domain(guest)}-root.qcow2"

    def data_volume(self, guest: str, export: str) -> str:
        return f"{self.domain(guest)}-{export}.raw"

    @property
    def base_volume(self) -> str:
        return f"{PREFIX}-{self.stack_id}-base.qcow2"

    @property
    def pool(self) -> str:
        return f"{PREFIX}-{self.stack_id}"

    @property
    def pool_path(self) -> str:
        return f"{POOL_ROOT}/{self.stack_id}"

    @property
    def network(self) -> str:
        return f"{PREFIX}-{self.stack_id}"

    @property
    def bridge(self) -> str:
        # Host-wide and at most 15 bytes: the VLAN id is unique per hypervisor.
        return f"{BRIDGE_PREFIX}{self.vlan_id}"

    def vlan_interface(self, trunk: str) -> str:
        return f"{trunk}.{self.vlan_id}"

    @property
    def host_dir(self) -> str:
        """Per-tenant folder on the hypervisor (fence_virtd config, key, pid file)."""
        return f"/etc/gfs2-cluster/{self.stack_id}"

    def boot_hook(self, driver: str) -> str:
        """libvirt's hook of this tenant on a hypervisor of DRIVER (qemu or xen: libxl)."""
        return f"/etc/libvirt/hooks/{'libxl' if driver == 'xen' else driver}.d/{PREFIX}-{self.stack_id}"

    @property
    def cluster(self) -> str:
        return self.stack_id

    def target_iqn(self, export: str) -> str:
        return f"{IQN_AUTHORITY}:{self.tenant}.{self.environment}.{export}"

    def initiator_iqn(self, member: str) -> str:
        return f"{IQN_AUTHORITY}:{self.tenant}.{self.environment}.{member}"

    def resource(self, *parts: str) -> str:
        """Pulumi logical name of a resource of this stack."""
        return "-".join((self.stack_id, *parts))
