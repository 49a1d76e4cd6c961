"""One tenant's cluster in one environment: everything from the network segment to GFS2
mounted on every member, composed from the other components."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_libvirt as libvirt

from components.access import Access, run_on_hypervisor, run_on_node
from components.block_device import SharedBlockDevice, SharedBlockDeviceArgs
from components.fencing import Fencing, FencingArgs
from components.gfs2 import Gfs2FileSystem, Gfs2FileSystemArgs, journals_before_joining
from components.guest import BootFiles, GuestMachine, GuestMachineArgs
from components.hypervisor import TenantNetwork, TenantNetworkArgs
from components.locking import ClusterLocking, ClusterLockingArgs
from components.membership import ClusterMembership, ClusterMembershipArgs
from components.stack_input import Secrets
from components.volume_group import ClusteredVolumeGroup, ClusteredVolumeGroupArgs
from render import guest as guest_scripts, host, machine_size, storage_size
from render.generations import generation
from spec.topology import Topology


def _platform_output(platform: pulumi.StackReference, stack: str, output: str, hypervisor: str) -> pulumi.Output[str]:
    """One hypervisor's entry of a platform output, or an error naming what is missing."""

    def pick(values):
        if not values or hypervisor not in values:
            raise pulumi.RunError(f"platform stack {stack}: output {output} has no hypervisor {hypervisor!r}")
        return values[hypervisor]

    return platform.get_output(output).apply(pick)


@dataclass(frozen=True)
class ImageFiles:
    """The image on the machine running Pulumi (uploaded into each hypervisor's pool),
    and its kernel and initrd as paths on the hypervisor (None: the image boots itself)."""

    disk: str
    kernel: Optional[str]
    initrd: Optional[str]


@dataclass
class TenantClusterArgs:
    topo: Topology
    """The validated cluster to build."""
    secrets: Secrets
    """SSH key, fence key and cluster authkey."""
    image: ImageFiles
    """Where the image files are."""


class TenantCluster(pulumi.ComponentResource):
    member_addresses: dict[str, str]
    mount_points: list[str]
    status: pulumi.Output[str]

    def __init__(self, name: str, args: TenantClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("gfs2-cluster:index:TenantCluster", name, None, opts)
        topo, secrets = args.topo, args.secrets
        spec, gen = topo.spec, generation(topo.spec.generation)
        child = pulumi.ResourceOptions(parent=self)
        protect = spec.protect_data

        providers, pools, bases, networks = {}, {}, {}, {}
        used = {g.hypervisor.name: g.hypervisor for g in topo.guests}
        platform = (
            pulumi.StackReference(f"{name}-platform", stack_name=spec.platform.stack, opts=child) if spec.platform else None
        )
        for hv in used.values():
            providers[hv.name] = libvirt.Provider(f"{name}-{hv.name}", uri=hv.uri, opts=child)
            on_hv = pulumi.ResourceOptions(parent=self, provider=providers[hv.name])
            if platform is not None:
                pools[hv.name] = _platform_output(platform, spec.platform.stack, "pools", hv.name)
                bases[hv.name] = _platform_output(platform, spec.platform.stack, "baseVolumes", hv.name)
            else:
                pool = libvirt.Pool(
                    f"{name}-{hv.name}-pool",
                    name=topo.names.pool,
                    type="dir",
                    target=libvirt.PoolTargetArgs(path=topo.names.pool_path),
                    opts=on_hv,
                )
                base = libvirt.Volume(
                    f"{name}-{hv.name}-image",
                    name=topo.names.base_volume,
                    pool=pool.name,
                    source=args.image.disk,
                    format=spec.image.format,
                    opts=on_hv,
                )
                pools[hv.name], bases[hv.name] = pool.name, base.id
            networks[hv.name] = TenantNetwork(
                f"{name}-{hv.name}-net",
                TenantNetworkArgs(topo, hv, providers[hv.name], secrets.ssh_private_key),
                child,
            )

        access = {node: Access(endpoint, secrets.ssh_private_key) for node, endpoint in topo.endpoints.items()}

        guests = {
            g.name: GuestMachine(
                f"{name}-{g.name}",
                GuestMachineArgs(
                    topo=topo,
                    guest=g,
                    provider=providers[g.hypervisor.name],
                    pool=pools[g.hypervisor.name],
                    base_volume_id=bases[g.hypervisor.name],
                    boot_files=BootFiles(args.image.kernel, args.image.initrd),
                    network=networks[g.hypervisor.name],
                    access=access[g.name],
                    ssh_public_key=secrets.ssh_public_key,
                    protect_data=protect,
                ),
                child,
            )
            for g in topo.guests
        }
        base_script = guest_scripts.base(topo)
        based = {
            g.name: run_on_node(
                f"{name}-{g.name}-base",
                access[g.name],
                base_script,
                pulumi.ResourceOptions(parent=self, depends_on=[guests[g.name].ready]),
            )
            for g in topo.guests
        }
        members = {m.name: access[m.name] for m in topo.members}
        after_base = {n: [r] for n, r in based.items()}

        devices = {
            e.name: SharedBlockDevice(
                f"{name}-{e.name}",
                SharedBlockDeviceArgs(
                    topo,
                    e,
                    access[e.server],
                    members,
                    server_ready=[based[e.server]] if e.server in based else [],
                    members_ready=after_base,
                ),
                child,
            )
            for e in topo.exports
        }

        member_hv = topo.member_hypervisor
        cluster_nodes = {n.name: access[n.name] for n in topo.cluster_nodes}
        first = topo.first_member.name
        fencing = Fencing(
            f"{name}-fencing",
            FencingArgs(
                topo,
                cluster_nodes,
                secrets.fence_key_b64,
                secrets.ssh_private_key,
                listener_after=[networks[member_hv.name]],
                nodes_ready=after_base,
            ),
            child,
        )
        # After a reboot of a hypervisor, libvirt brings back what the tenant had there
        # before it starts the tenant's domains (they autostart).
        for hv in used.values():
            listener_here = fencing.listener is not None and hv.name == member_hv.name
            run_on_hypervisor(
                f"{name}-{hv.name}-boot-hook",
                topo.hypervisor_endpoint(hv.name),
                host.boot_hook(topo, hv, listener_here),
                secrets.ssh_private_key,
                pulumi.ResourceOptions(
                    parent=self, depends_on=[networks[hv.name], *([fencing.listener] if listener_here else [])]
                ),
            )
        # What a member needs before it joins, so that it joins ready for the resources
        # the cluster already runs (a member added to a running cluster).
        imports = {m.name: [based[m.name], *(d.imports[m.name] for d in devices.values())] for m in topo.members}
        journals = journals_before_joining(name, topo, members[first], [based[first]], self)

        def locking_args(after: dict[str, list[pulumi.Resource]]) -> ClusterLockingArgs:
            return ClusterLockingArgs(topo, gen, members, tuple(d.device for d in devices.values()), member_after=after)

        node_ready = {n: [based[n]] for n in cluster_nodes}
        locking = None
        if gen.locking_before_join:
            locking = ClusterLocking(f"{name}-locking", locking_args(imports), child)
            for m in topo.members:
                node_ready[m.name] = [*imports[m.name], locking.configured[m.name], *journals]
        membership = ClusterMembership(
            f"{name}-membership",
            ClusterMembershipArgs(
                topo,
                gen,
                cluster_nodes,
                secrets.cluster_auth_key_b64,
                roster_after={n: [based[n]] for n in cluster_nodes},
                node_ready=node_ready,
                fence_after=fencing.armed,
            ),
            child,
        )
        if locking is None:
            after_join = {m: [membership.joined[m], *imports[m]] for m in members}
            locking = ClusterLocking(f"{name}-locking", locking_args(after_join), child)
        # Every node of the membership (GNBD servers too) before quorum is awaited.
        locking.wait_ready([*fencing.armed, *membership.fence_devices, *membership.joined.values()])
        if (mgmt := gen.management(topo)) is not None:
            for m in topo.members:
                run_on_node(
                    f"{name}-{m.name}-management",
                    access[m.name],
                    mgmt,
                    pulumi.ResourceOptions(parent=self, depends_on=[membership.joined[m.name]]),
                )

        mounted = []
        for vg in topo.volume_groups:
            group = ClusteredVolumeGroup(
                f"{name}-{vg.name}",
                ClusteredVolumeGroupArgs(
                    topo,
                    gen,
                    vg,
                    tuple(devices[e].device for e in vg.exports),
                    members[first],
                    after=[locking.ready, *(devices[e] for e in vg.exports)],
                    protect_data=protect,
                ),
                child,
            )
            for lv in vg.logical_volumes:
                if lv.filesystem is None:
                    continue
                fs = Gfs2FileSystem(
                    f"{name}-{lv.filesystem.fs_name}",
                    Gfs2FileSystemArgs(topo, gen, lv.filesystem, members, after=[group], protect_data=protect),
                    child,
                )
                mounted += fs.mounted

        # A raised size: every member's imports in turn, then each file system over its LV.
        sized: list[pulumi.Resource] = [d for g in guests.values() for d in g.disk_sizes]
        for m in topo.members:
            script = storage_size.member_devices(topo, m)
            if script is not None:
                # On the member itself: deleted (with the member) before its guest goes.
                sized = [run_on_node(f"{name}-{m.name}-storage-size", members[m.name], script,
                                     pulumi.ResourceOptions(parent=self, depends_on=[*sized, *mounted, based[m.name]]))]
        for fs in topo.filesystems:
            script = storage_size.filesystem(topo, fs)
            if script is not None:
                sized.append(run_on_node(f"{name}-{fs.fs_name}-grow", members[first], script,
                                         pulumi.ResourceOptions(parent=self, depends_on=sized)))
        # A changed vCPU or memory size: one guest restarted at a time, after any growth.
        for g in topo.guests:
            sized = [run_on_hypervisor(
                f"{name}-{g.name}-machine-size",
                topo.hypervisor_endpoint(g.hypervisor.name),
                machine_size.machine_size(topo, g),
                secrets.ssh_private_key,
                pulumi.ResourceOptions(parent=self, depends_on=[*sized, *mounted, guests[g.name].domain]),
                stdin=secrets.ssh_private_key,
            )]

        status = run_on_node(
            f"{name}-status",
            members[first],
            guest_scripts.cluster_status(),
            pulumi.ResourceOptions(parent=self, depends_on=mounted),
        )
        self.member_addresses = {m.name: str(m.address) for m in topo.members}
        self.mount_points = [fs.mount_point for fs in topo.filesystems]
        self.status = status.stdout
        self.register_outputs(
            {"memberAddresses": self.member_addresses, "mountPoints": self.mount_points, "status": self.status}
        )
