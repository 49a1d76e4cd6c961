"""What every block export protocol provides: the server side, one import per member,
and where the imported device appears on the member."""

from __future__ import annotations

from typing import Protocol

from render.script import NodeScript
from spec.topology import ExportPlan, Member, Topology


class ExportProtocol(Protocol):
    name: str

    def server(self, topo: Topology, export: ExportPlan) -> NodeScript:
        """Runs on the export server: serve export.device to the members only."""
        ...

    def client(self, topo: Topology, export: ExportPlan, member: Member) -> NodeScript:
        """Runs on one member: attach the export, persistently (it must come back after
        the member is fenced and reboots, before the cluster stack starts)."""
        ...

    def device(self, topo: Topology, export: ExportPlan, member: Member) -> str:
        """The stable path of the imported block device on the member."""
        ...

    def resize(self, topo: Topology, export: ExportPlan) -> tuple[str, str]:
        """How a member's import shows the export's new size, for render/storage_size.py:
        ("rescan", target IQN) online, ("reconnect", client unit) with the member out of
        pacemaker's resources, or ("refuse", why growth is not possible)."""
        ...
