"""One guest: a copy-on-write volume of the image, its data disks, the domain, and the
moment it answers SSH."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_libvirt as libvirt

from components.access import BOOT_DIAL_LIMIT, Access, run_on_hypervisor, run_on_node
from components.hypervisor import TenantNetwork
from render import boot, guest as guest_scripts, host, storage_size
from render.domain import domain_xslt
from spec.topology import Guest, Topology

GIB = 1024**3


@dataclass(frozen=True)
class BootFiles:
    """Kernel and initrd on the hypervisor, for direct kernel boot (None: the image boots itself)."""

    kernel: Optional[str]
    initrd: Optional[str]


@dataclass
class GuestMachineArgs:
    topo: Topology
    """The tenant cluster."""
    guest: Guest
    """The guest to make."""
    provider: libvirt.Provider
    """libvirt provider of the guest's hypervisor."""
    pool: pulumi.Input[str]
    """Storage pool of the stack's volumes."""
    base_volume_id: pulumi.Input[str]
    """The image, as a volume the root disk is a copy-on-write layer of."""
    boot_files: BootFiles
    """Direct boot files, if any."""
    network: TenantNetwork
    """The tenant segment the guest's one interface joins."""
    access: Access
    """How node scripts reach this guest."""
    ssh_public_key: str
    """Authorized for root through the kernel command line."""
    protect_data: bool
    """Protect the data disks (they hold the shared file system)."""


class GuestMachine(pulumi.ComponentResource):
    domain: libvirt.Domain
    boot_watch: Optional[pulumi.Resource] = None
    ready: pulumi.Resource
    disk_sizes: list[pulumi.Resource]

    def __init__(self, name: str, args: GuestMachineArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("gfs2-cluster:guest:GuestMachine", name, None, opts)
        topo, g = args.topo, args.guest
        on_hv = pulumi.ResourceOptions(parent=self, provider=args.provider)
        root = libvirt.Volume(
            f"{name}-root",
            name=topo.names.root_volume(g.name),
            pool=args.pool,
            base_volume_id=args.base_volume_id,
            format="qcow2",
            opts=on_hv,
        )
        data = [
            libvirt.Volume(
                f"{name}-{disk.export}",
                name=topo.names.data_volume(g.name, disk.export),
                pool=args.pool,
                size=disk.size_gib * GIB,
                format="raw",
                # The provider replaces a volume whose size changes, data and all: a
                # larger size is the disk_size step's, which grows it in place.
                opts=pulumi.ResourceOptions.merge(
                    on_hv, pulumi.ResourceOptions(protect=args.protect_data, ignore_changes=["size"])
                ),
            )
            for disk in g.data_disks
        ]
        interface = libvirt.DomainNetworkInterfaceArgs(
            network_id=args.network.network_id,
            bridge=None if args.network.network_id is not None else args.network.bridge,
            mac=boot.mac_address(g.domain),
        )
        direct = args.boot_files.kernel is not None
        on_host = topo.hypervisor_endpoint(g.hypervisor.name)
        self.domain = libvirt.Domain(
            f"{name}-domain",
            name=g.domain,
            type=g.hypervisor.domain_type,
            # The provider looks up machine "pc", which Xen's capabilities do not list.
            machine="xenfv" if g.hypervisor.domain_type == "xen" else None,
            vcpu=g.size.vcpu,
            memory=g.size.memory_mib,
            disks=[libvirt.DomainDiskArgs(volume_id=v.id) for v in (root, *data)],
            network_interfaces=[interface],
            kernel=args.boot_files.kernel,
            initrd=args.boot_files.initrd,
            cmdlines=boot.provider_cmdlines(boot.kernel_cmdline(topo, g, args.ssh_public_key)) if direct else None,
            consoles=[libvirt.DomainConsoleArgs(type="pty", target_port="0", target_type="serial")],
            xml=libvirt.DomainXmlArgs(xslt=domain_xslt(topo, g)),
            running=True,
            # Back after a reboot of the hypervisor; its boot hook first restores the
            # tenant's pieces there (render/host.py boot_hook_text).
            autostart=True,
            # The provider replaces a domain whose vcpu or memory changes: the machine-size
            # step restarts members one at a time with them instead.
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[args.network], ignore_changes=["vcpu", "memory"]
            ),
        )
        if g.hypervisor.domain_type == "xen" and g.size.cpu_cap_percent is not None:
            run_on_hypervisor(
                f"{name}-cpu-cap",
                on_host,
                host.xen_cpu_cap(g.hypervisor, g.domain, g.size.cpu_cap_percent),
                args.access.private_key,
                pulumi.ResourceOptions(parent=self, depends_on=[self.domain]),
            )
        # On the hypervisor, before anything dials the guest: a guest hung in early boot
        # (under emulation) is reset once, one that still does not come up fails here,
        # naming its domain and console log.
        booted: list[pulumi.Resource] = [self.domain]
        watch = guest_scripts.boot_watch(topo, g)
        if watch is not None:
            self.boot_watch = run_on_hypervisor(
                f"{name}-boot-watch",
                on_host,
                watch,
                args.access.private_key,
                pulumi.ResourceOptions(parent=self, depends_on=[self.domain]),
            )
            booted.append(self.boot_watch)
        self.ready = run_on_node(
            f"{name}-ready",
            args.access,
            guest_scripts.ready(),
            pulumi.ResourceOptions(parent=self, depends_on=booted),
            dial_error_limit=BOOT_DIAL_LIMIT,
        )
        self.disk_sizes = [
            run_on_hypervisor(
                f"{name}-{disk.export}-size",
                on_host,
                storage_size.data_disk(topo, g, disk),
                args.access.private_key,
                pulumi.ResourceOptions(parent=self, depends_on=[self.domain]),
            )
            for disk in g.data_disks
        ]
        self.register_outputs({"domain": self.domain.name})
