"""Fencing of one tenant: the fence_xvm key on every cluster node, and the tenant's own
fence_virtd on the hypervisor that runs them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi

from components.access import Access, run_on_node
from components.hypervisor import FenceListener, FenceListenerArgs
from render import guest as guest_scripts
from spec.topology import Topology


@dataclass
class FencingArgs:
    topo: Topology
    """The tenant cluster."""
    nodes: dict[str, Access]
    """How to reach each cluster node (members, and GNBD servers in legacy clusters)."""
    fence_key_b64: pulumi.Input[str]
    """The tenant's fence_xvm key (secret, base64)."""
    private_key: pulumi.Input[str]
    """SSH key for a remote hypervisor."""
    listener_after: list[pulumi.Resource] = field(default_factory=list)
    """What the listener needs first (the tenant bridge)."""
    nodes_ready: dict[str, list[pulumi.Resource]] = field(default_factory=dict)
    """What must exist on each node first (booted)."""


class Fencing(pulumi.ComponentResource):
    armed: list[pulumi.Resource]
    listener: Optional[pulumi.Resource] = None

    def __init__(self, name: str, args: FencingArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("gfs2-cluster:fencing:Fencing", name, None, opts)
        topo = args.topo
        self.armed = []
        if topo.fencing.method == "fence_xvm":
            hv = topo.member_hypervisor
            self.listener = listener = FenceListener(
                f"{name}-listener",
                FenceListenerArgs(topo, hv, args.fence_key_b64, args.private_key, after=args.listener_after),
                pulumi.ResourceOptions(parent=self),
            )
            script = guest_scripts.fence_key(topo)
            self.armed = [listener] + [
                run_on_node(
                    f"{name}-key-{node}",
                    access,
                    script,
                    pulumi.ResourceOptions(parent=self, depends_on=args.nodes_ready.get(node, [])),
                    stdin=args.fence_key_b64,
                )
                for node, access in args.nodes.items()
            ]
        self.register_outputs({})
