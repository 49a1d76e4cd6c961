"""Hypervisor side of one tenant: its network segment and its fence_virtd listener."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_libvirt as libvirt

from components.access import run_on_hypervisor
from render import host
from spec.model import Hypervisor
from spec.topology import Topology


@dataclass
class TenantNetworkArgs:
    topo: Topology
    """The tenant cluster."""
    hypervisor: Hypervisor
    """Where the segment is made."""
    provider: libvirt.Provider
    """libvirt provider of that hypervisor."""
    private_key: pulumi.Input[str]
    """SSH key for a remote hypervisor's host-side commands."""


class TenantNetwork(pulumi.ComponentResource):
    """The tenant's L2 segment: an isolated libvirt network, a bridge on TRUNK.VLAN, or
    an existing Open vSwitch bridge whose guest ports the domain XSLT tags; in every
    mode behind a guard that keeps the CIDR off the hypervisor's default route."""

    bridge: str
    network_id: Optional[pulumi.Output[str]]
    guard: pulumi.Resource

    def __init__(self, name: str, args: TenantNetworkArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("gfs2-cluster:hypervisor:TenantNetwork", name, None, opts)
        topo, mode = args.topo, args.topo.spec.network.mode
        on_host = topo.hypervisor_endpoint(args.hypervisor.name)
        self.bridge = topo.bridge
        self.network_id = None
        # Before the segment and after it on destroy: no lab packet takes the default
        # route while the bridge is not there yet, down, or gone.
        self.guard = run_on_hypervisor(
            f"{name}-guard",
            on_host,
            host.lab_guard(topo),
            args.private_key,
            pulumi.ResourceOptions(parent=self),
        )
        if mode == "isolated":
            network = libvirt.Network(
                f"{name}-network",
                name=topo.names.network,
                mode="none",
                bridge=topo.bridge,
                addresses=[str(topo.spec.network.cidr)],
                dhcp=libvirt.NetworkDhcpArgs(enabled=False),
                dns=libvirt.NetworkDnsArgs(enabled=False),
                autostart=True,
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[self.guard]),
            )
            self.network_id = network.id
        elif mode == "vlan":
            run_on_hypervisor(
                f"{name}-bridge",
                on_host,
                host.vlan_network(topo, args.hypervisor),
                args.private_key,
                pulumi.ResourceOptions(parent=self, depends_on=[self.guard]),
            )
        self.register_outputs({"bridge": self.bridge, "networkId": self.network_id})


@dataclass
class FenceListenerArgs:
    topo: Topology
    """The tenant cluster."""
    hypervisor: Hypervisor
    """Where the tenant's guests run."""
    fence_key_b64: pulumi.Input[str]
    """The tenant's fence_xvm key (secret, base64); sent on stdin."""
    private_key: pulumi.Input[str]
    """SSH key for a remote hypervisor."""
    after: list[pulumi.Resource] = field(default_factory=list)
    """What the daemon needs first (the tenant bridge it binds to)."""


class FenceListener(pulumi.ComponentResource):
    """This tenant's fence_virtd: its own key, its own bridge and port, and groups that
    let it fence only this tenant's domains."""

    def __init__(self, name: str, args: FenceListenerArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("gfs2-cluster:hypervisor:FenceListener", name, None, opts)
        self.daemon = run_on_hypervisor(
            f"{name}-fence-virtd",
            args.topo.hypervisor_endpoint(args.hypervisor.name),
            host.fence_listener(args.topo, args.hypervisor),
            args.private_key,
            # Passed to the child itself: a component's depends_on does not order its
            # children, and the daemon refuses to start before its bridge exists.
            pulumi.ResourceOptions(parent=self, depends_on=args.after),
            stdin=args.fence_key_b64,
        )
        self.register_outputs({})
