"""A block device exported over IP by one server and imported by every member; the
protocol module (render/exports/) decides how."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi

from components.access import Access, run_on_node
from render.exports import protocol
from spec.topology import ExportPlan, Topology


@dataclass
class SharedBlockDeviceArgs:
    topo: Topology
    """The tenant cluster."""
    export: ExportPlan
    """The export to serve and import."""
    server: Access
    """How to reach the export server."""
    members: dict[str, Access]
    """How to reach each member, by member name."""
    server_ready: list[pulumi.Resource] = field(default_factory=list)
    """What must exist before the server step (the server guest booted)."""
    members_ready: dict[str, list[pulumi.Resource]] = field(default_factory=dict)
    """What must exist before each member's import (that member booted)."""


class SharedBlockDevice(pulumi.ComponentResource):
    imports: dict[str, pulumi.Resource]
    device: str

    def __init__(self, name: str, args: SharedBlockDeviceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("gfs2-cluster:storage:SharedBlockDevice", name, None, opts)
        topo, export = args.topo, args.export
        proto = protocol(export.protocol)
        served = run_on_node(
            f"{name}-export",
            args.server,
            proto.server(topo, export),
            pulumi.ResourceOptions(parent=self, depends_on=args.server_ready),
        )
        self.imports = {
            m.name: run_on_node(
                f"{name}-import-{m.name}",
                args.members[m.name],
                proto.client(topo, export, m),
                pulumi.ResourceOptions(parent=self, depends_on=[served, *args.members_ready.get(m.name, [])]),
            )
            for m in topo.members
        }
        self.device = proto.device(topo, export, topo.first_member)
        self.register_outputs({"device": self.device})
