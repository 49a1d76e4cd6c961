"""A GFS2 file system: made once on its logical volume, then mounted on every member
(by pacemaker's Filesystem clone, or by each member's fstab); journals for members added
later, before they join."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi

from components.access import Access, run_on_node
from render import gfs2
from render.generations.base import Generation
from spec.topology import FilesystemPlan, Topology


@dataclass
class Gfs2FileSystemArgs:
    topo: Topology
    """The tenant cluster."""
    generation: Generation
    """Who mounts it."""
    fs: FilesystemPlan
    """The file system."""
    members: dict[str, Access]
    """How to reach each member, by name."""
    after: list[pulumi.Resource] = field(default_factory=list)
    """The volume group that holds it (and, through it, fencing and locking)."""
    protect_data: bool = True
    """Keep the file system resource from being deleted."""


class Gfs2FileSystem(pulumi.ComponentResource):
    mounted: list[pulumi.Resource]

    def __init__(self, name: str, args: Gfs2FileSystemArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("gfs2-cluster:storage:Gfs2FileSystem", name, None, opts)
        topo, fs, gen = args.topo, args.fs, args.generation
        first = topo.first_member.name
        made = run_on_node(
            f"{name}-mkfs",
            args.members[first],
            gfs2.mkfs(fs),
            pulumi.ResourceOptions(parent=self, depends_on=args.after, protect=args.protect_data),
        )
        once = gen.mount_once(topo, fs)
        per_member = gen.mount_per_member(topo, fs)
        self.mounted = []
        if once is not None:
            self.mounted.append(
                run_on_node(f"{name}-mount", args.members[first], once, pulumi.ResourceOptions(parent=self, depends_on=[made]))
            )
        if per_member is not None:
            self.mounted += [
                run_on_node(
                    f"{name}-mount-{m.name}",
                    args.members[m.name],
                    per_member,
                    pulumi.ResourceOptions(parent=self, depends_on=[made]),
                )
                for m in topo.members
            ]
        self.register_outputs({"mountPoint": fs.mount_point, "lockTable": fs.lock_table})


def journals_before_joining(
    name: str, topo: Topology, first: Access, after: list[pulumi.Resource], parent: pulumi.Resource
) -> list[pulumi.Resource]:
    """Per file system, on the first member: a journal for every member, added online when
    members were added to a running cluster (before they join: a member without a journal
    cannot mount). Nothing to do before mkfs, which makes them all."""
    return [
        run_on_node(
            f"{name}-{fs.fs_name}-journals",
            first,
            gfs2.journals(fs),
            pulumi.ResourceOptions(parent=parent, depends_on=after),
        )
        for fs in topo.filesystems
    ]
