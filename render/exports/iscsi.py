"""iSCSI on RHEL 9 and Debian 12: a LIO target made with targetcli-fb on the storage
server, open-iscsi on every member.

The target lets in exactly the members' initiator IQNs (no demo mode); the saved LIO
config and node.startup=automatic bring both sides back after a reboot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from render.script import NodeScript, node_script
from spec.topology import ExportPlan, Member, Topology

UNIT_DIR = "/etc/systemd/system"
CONFIGFS = "/sys/kernel/config/target"  # where LIO shows its live configuration


class Distro(NamedTuple):
    """Where a distribution keeps what survives a reboot."""

    restore_service: str  # restores the saved LIO config at boot
    save_file: str  # where `targetcli saveconfig` writes it
    login_service: str  # logs in the node.startup=automatic records at boot


DISTROS = {
    "debian12": Distro("rtslib-fb-targetctl", "/etc/rtslib-fb-target/saveconfig.json", "open-iscsi"),
    "rhel9": Distro("target", "/etc/target/saveconfig.json", "iscsi"),
}


def distro(topo: Topology) -> Distro:
    # iSCSI belongs to the current generation, whose images are these (spec/rules.py).
    return DISTROS[topo.spec.image.os_family]


def portal(export: ExportPlan) -> str:
    return f"{export.server_address}:{export.port}"


def by_path_device(topo: Topology, export: ExportPlan) -> str:
    """udev's stable name for LUN 0 of the target behind this portal."""
    return f"/dev/disk/by-path/ip-{portal(export)}-iscsi-{topo.names.target_iqn(export.name)}-lun-0"


def wait_unit_name(export: ExportPlan) -> str:
    return f"gfs2-iscsi-import-{export.name}.service"


def wait_unit(export: ExportPlan, device: str, login_service: str) -> str:
    """Holds the cluster stack back at boot until the distro's login brought the LUN.

    Ordered after the login service and before corosync, it also makes shutdown stop the
    cluster stack before the iSCSI sessions are logged out.
    """
    return "\n".join(
        [
            "[Unit]",
            f"Description=gfs2-cluster iSCSI import {export.name}: wait for its LUN",
            f"Wants={login_service}.service",
            f"After={login_service}.service",
            "Before=corosync.service pacemaker.service",
            "",
            "[Service]",
            "Type=oneshot",
            "RemainAfterExit=yes",
            "ExecStart=/bin/sh -c 'until [ -b \"$$1\" ]; do sleep 1; done' wait-for-device " + device,
            "TimeoutStartSec=120",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
        ]
    )


@dataclass(frozen=True)
class IscsiProtocol:
    name: str = "iscsi"

    def server(self, topo: Topology, export: ExportPlan) -> NodeScript:
        d = distro(topo)
        return node_script(
            f"export-iscsi-{export.name}",
            "export_iscsi.sh",
            "export_iscsi_delete.sh",
            configfs=CONFIGFS,
            backstore=export.name,
            device=export.device,
            target_iqn=topo.names.target_iqn(export.name),
            portal_address=str(export.server_address),
            port=export.port,
            initiators=[topo.names.initiator_iqn(m.name) for m in topo.members],
            restore_service=d.restore_service,
            save_file=d.save_file,
        )

    def client(self, topo: Topology, export: ExportPlan, member: Member) -> NodeScript:
        d = distro(topo)
        device = self.device(topo, export, member)
        return node_script(
            f"import-iscsi-{export.name}",
            "import_iscsi.sh",
            "import_iscsi_delete.sh",
            export_name=export.name,
            target_iqn=topo.names.target_iqn(export.name),
            initiator_iqn=topo.names.initiator_iqn(member.name),
            portal=portal(export),
            device=device,
            login_service=d.login_service,
            unit_name=wait_unit_name(export),
            unit_file=f"{UNIT_DIR}/{wait_unit_name(export)}",
            unit=wait_unit(export, device, d.login_service),
        )

    def device(self, topo: Topology, export: ExportPlan, member: Member) -> str:
        return by_path_device(topo, export)

    def resize(self, topo: Topology, export: ExportPlan) -> tuple[str, str]:
        # LIO's block backstore reports its device's current size; the session rescans online.
        return ("rescan", topo.names.target_iqn(export.name))


ISCSI = IscsiProtocol()
