"""Cluster membership (cman or corosync + pacemaker, by generation). Every node's config
is written first (the roster), then each node joins as soon as what it needs is there;
a member joins with its fence device already in place. A node taken out of the stack
leaves cleanly before the others load a nodelist without it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi

from components.access import Access, run_on_node
from render.generations.base import Generation
from spec.topology import Topology


@dataclass
class ClusterMembershipArgs:
    topo: Topology
    """The tenant cluster."""
    generation: Generation
    """cman or pacemaker."""
    nodes: dict[str, Access]
    """How to reach each node that joins the membership, by name."""
    auth_key_b64: pulumi.Input[str]
    """Cluster authkey (secret, base64), on stdin of the roster step."""
    roster_after: dict[str, list[pulumi.Resource]] = field(default_factory=dict)
    """What each node's roster step needs first (its base set up)."""
    node_ready: dict[str, list[pulumi.Resource]] = field(default_factory=dict)
    """What must exist on each node before it joins."""
    fence_after: list[pulumi.Resource] = field(default_factory=list)
    """What a fence device needs first (the listener and the fence keys)."""


class ClusterMembership(pulumi.ComponentResource):
    joined: dict[str, pulumi.Resource]
    fence_devices: list[pulumi.Resource]

    def __init__(self, name: str, args: ClusterMembershipArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("gfs2-cluster:cluster:ClusterMembership", name, None, opts)
        gen, topo = args.generation, args.topo
        nodes = [n.name for n in topo.cluster_nodes]

        def on(node: str, step: str, script, after: list, stdin=None) -> pulumi.Resource:
            return run_on_node(step, args.nodes[node], script, pulumi.ResourceOptions(parent=self, depends_on=after),
                               stdin=stdin)

        roster = gen.roster(topo)
        rosters = []
        if roster is not None:
            rosters = [
                on(n, f"{name}-{n}-roster", roster, args.roster_after.get(n, []), stdin=args.auth_key_b64)
                for n in nodes
            ]
        join = gen.membership(topo)
        first = topo.first_member.name
        self.joined = {first: on(first, f"{name}-{first}", join, [*rosters, *args.node_ready.get(first, [])])}
        fence_devices = {}
        for m in topo.members:
            script = gen.fence_device(topo, m)
            if script is not None:
                fence_devices[m.name] = on(first, f"{name}-{m.name}-fence-device", script,
                                           [self.joined[first], *args.fence_after])
        for n in nodes:
            if n != first:
                after = [*rosters, *args.node_ready.get(n, []), *([fence_devices[n]] if n in fence_devices else [])]
                self.joined[n] = on(n, f"{name}-{n}", join, after)
        self.fence_devices = list(fence_devices.values())
        self.register_outputs({"nodes": list(self.joined)})
