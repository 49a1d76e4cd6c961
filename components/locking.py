"""Clustered LVM locking: set up on every member once it has joined, then one
cluster-wide step that waits until fencing and the lock managers run everywhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi

from components.access import Access, run_on_node
from render.generations.base import Generation
from spec.topology import Topology


@dataclass
class ClusterLockingArgs:
    topo: Topology
    """The tenant cluster."""
    generation: Generation
    """clvmd, or lvmlockd + dlm under pacemaker."""
    members: dict[str, Access]
    """How to reach each member, by name."""
    devices: tuple[str, ...]
    """Every imported export, as the members see them."""
    member_after: dict[str, list[pulumi.Resource]] = field(default_factory=dict)
    """What each member needs first: joined the cluster, its imports attached."""
    ready_after: list[pulumi.Resource] = field(default_factory=list)
    """What the cluster-wide step needs besides locking (fencing armed)."""


class ClusterLocking(pulumi.ComponentResource):
    ready: pulumi.Resource

    def __init__(self, name: str, args: ClusterLockingArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("gfs2-cluster:cluster:ClusterLocking", name, None, opts)
        topo, gen = args.topo, args.generation
        script = gen.locking(topo, args.devices)
        configured = [
            run_on_node(
                f"{name}-{m.name}",
                args.members[m.name],
                script,
                pulumi.ResourceOptions(parent=self, depends_on=args.member_after.get(m.name, [])),
            )
            for m in topo.members
        ]
        self.ready = run_on_node(
            f"{name}-ready",
            args.members[topo.first_member.name],
            gen.cluster_ready(topo),
            pulumi.ResourceOptions(parent=self, depends_on=[*configured, *args.ready_after]),
        )
        self.register_outputs({})
