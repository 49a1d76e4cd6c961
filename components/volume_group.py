"""A clustered volume group with its logical volumes: LVM locking on every member, then
the VG made once (clvmd's vgcreate -cy, or lvmlockd's vgcreate --shared)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi

from components.access import Access, run_on_node
from render.generations.base import Generation
from spec.topology import Topology, VolumeGroupPlan


@dataclass
class ClusteredVolumeGroupArgs:
    topo: Topology
    """The tenant cluster."""
    generation: Generation
    """clvmd or lvmlockd."""
    vg: VolumeGroupPlan
    """The volume group and its logical volumes."""
    devices: tuple[str, ...]
    """The imported exports it spans, as the members see them."""
    first_member: Access
    """Where the cluster-wide step runs."""
    after: list[pulumi.Resource] = field(default_factory=list)
    """Cluster ready (locking running everywhere) and every import."""
    protect_data: bool = True
    """Deleting the VG deletes the data in it."""


class ClusteredVolumeGroup(pulumi.ComponentResource):
    created: pulumi.Resource

    def __init__(self, name: str, args: ClusteredVolumeGroupArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("gfs2-cluster:storage:ClusteredVolumeGroup", name, None, opts)
        self.created = run_on_node(
            f"{name}-create",
            args.first_member,
            args.generation.volume_group(args.topo, args.vg, args.devices),
            pulumi.ResourceOptions(parent=self, depends_on=args.after, protect=args.protect_data),
        )
        self.register_outputs({"name": args.vg.name})
