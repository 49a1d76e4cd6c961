"""Cluster membership (cman or corosync + pacemaker, by generation): every node joins in
parallel, each as soon as it is ready."""

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
    """Cluster authkey (secret, base64), on stdin where the generation reads one."""
    node_ready: dict[str, list[pulumi.Resource]] = field(default_factory=dict)
    """What must exist on each node before it joins."""


class ClusterMembership(pulumi.ComponentResource):
    joined: dict[str, pulumi.Resource]

    def __init__(self, name: str, args: ClusterMembershipArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("gfs2-cluster:cluster:ClusterMembership", name, None, opts)
        gen, topo = args.generation, args.topo
        script = gen.membership(topo)
        stdin = args.auth_key_b64 if gen.membership_reads_authkey else None
        self.joined = {
            node.name: run_on_node(
                f"{name}-{node.name}",
                args.nodes[node.name],
                script,
                pulumi.ResourceOptions(parent=self, depends_on=args.node_ready.get(node.name, [])),
                stdin=stdin,
            )
            for node in topo.cluster_nodes
        }
        self.register_outputs({"nodes": list(self.joined)})
