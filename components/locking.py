"""Clustered LVM locking: set up on every member (before it joins, or once it has, by
generation), then one cluster-wide step that waits until the lock managers run everywhere."""

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
    """What each member needs first: its imports attached (and, for clvmd, joined)."""


class ClusterLocking(pulumi.ComponentResource):
    configured: dict[str, pulumi.Resource]
    ready: pulumi.Resource

    def __init__(self, name: str, args: ClusterLockingArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("gfs2-cluster:cluster:ClusterLocking", name, None, opts)
        self._name, self._args = name, args
        script = args.generation.locking(args.topo, args.devices)
        self.configured = {
            m.name: run_on_node(
                f"{name}-{m.name}",
                args.members[m.name],
                script,
                pulumi.ResourceOptions(parent=self, depends_on=args.member_after.get(m.name, [])),
            )
            for m in args.topo.members
        }
        self.register_outputs({})

    def wait_ready(self, after: list[pulumi.Resource]) -> pulumi.Resource:
        """The cluster-wide step, once AFTER (every node joined, fencing armed) is there:
        made here because with lvmlockd the members' setup comes before they join."""
        topo, gen = self._args.topo, self._args.generation
        self.ready = run_on_node(
            f"{self._name}-ready",
            self._args.members[topo.first_member.name],
            gen.cluster_ready(topo),
            pulumi.ResourceOptions(parent=self, depends_on=[*self.configured.values(), *after]),
        )
        return self.ready
