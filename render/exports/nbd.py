"""NBD on Debian 12: one nbd-server per export behind its own systemd unit on the storage
server, and one nbd-client unit per export on every member.

One server process per export because nbd-server has a single port per config file
([generic] port) while every export here has its own port; it also lets one export be
restarted without dropping the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from render.script import NodeScript, node_script
from spec.topology import ExportPlan, Member, Topology

UNIT_DIR = "/etc/systemd/system"
CONFIG_DIR = "/etc/nbd-server"


def server_unit_name(export: ExportPlan) -> str:
    return f"gfs2-nbd-export-{export.name}.service"


def client_unit_name(export: ExportPlan) -> str:
    return f"gfs2-nbd-import-{export.name}.service"


def config_path(export: ExportPlan) -> str:
    return f"{CONFIG_DIR}/gfs2-{export.name}.conf"


def allow_path(export: ExportPlan) -> str:
    return f"{CONFIG_DIR}/gfs2-{export.name}.allow"


def pid_path(export: ExportPlan) -> str:
    return f"/run/gfs2-nbd-export-{export.name}.pid"


def _keyfile_value(text: str) -> str:
    """A GKeyFile string value (nbd-server reads its config with GLib): escaped so that a
    device path can never end the line or start another key."""
    escaped = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return "\\s" + escaped[1:] if escaped.startswith(" ") else escaped


def server_config(export: ExportPlan, allow_file: str) -> str:
    """nbd-server(5) config serving export.device as the named export export.name."""
    return "\n".join(
        [
            "# gfs2-cluster: rendered, replaced on every change.",
            "[generic]",
            # Group disk reads and writes the raw disk (root:disk 0660) without root.
            "user = nbd",
            "group = disk",
            f"listenaddr = {export.server_address}",
            f"port = {export.port}",
            # nbd-client -l (the members' wait for the server at boot) needs the list.
            "allowlist = true",
            "",
            f"[{export.name}]",
            f"exportname = {_keyfile_value(export.device)}",
            # Read at every connection: a changed member list needs no restart.
            f"authfile = {allow_file}",
            "readonly = false",
            "copyonwrite = false",
            # A cluster file system needs its flushes and FUA writes to reach the disk.
            "flush = true",
            "fua = true",
        ]
    )


def allow_list(topo: Topology) -> str:
    """The authfile: one member address a line, nobody else."""
    return "\n".join(str(m.address) for m in topo.members)


def server_unit(export: ExportPlan) -> str:
    return "\n".join(
        [
            "[Unit]",
            f"Description=gfs2-cluster NBD export {export.name}",
            "Documentation=man:nbd-server(1) man:nbd-server(5)",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            # In the foreground (-d) nbd-server serves one client and exits; daemonized it
            # forks one process per client, so systemd follows it by its pid file.
            "Type=forking",
            f"PIDFile={pid_path(export)}",
            f"ExecStart=/bin/nbd-server -C {config_path(export)} -p {pid_path(export)}",
            "Restart=on-failure",
            "RestartSec=5",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
        ]
    )


def client_unit(export: ExportPlan, device: str) -> str:
    """The member's attachment of one export, back at every boot before the cluster stack.

    nbd-client 3.24 configures the device over netlink by default and then exits, and in
    that mode -persist does nothing: only the ioctl mode (-nonetlink) reconnects after a
    dropped connection. No -timeout: without one the kernel keeps waiting for a slow server
    instead of failing the I/O, which a cluster file system would not survive.
    """
    addr, port = export.server_address, export.port
    return "\n".join(
        [
            "[Unit]",
            f"Description=gfs2-cluster NBD import {export.name} on {device}",
            "Documentation=man:nbd-client(8)",
            "Wants=network-online.target",
            "After=network-online.target",
            # A fenced member reboots: its shared disk must be back before the cluster stack.
            "Before=corosync.service pacemaker.service",
            "StartLimitIntervalSec=0",
            "",
            "[Service]",
            "Type=simple",
            "ExecStartPre=/sbin/modprobe nbd",
            "ExecStartPre=/bin/sh -c 'until /sbin/nbd-client -l \"$$1\" \"$$2\" >/dev/null 2>&1; do sleep 2; done'"
            f" wait-for-server {addr} {port}",
            f"ExecStart=/sbin/nbd-client -N {export.name} {addr} {port} {device} -nonetlink -persist -nofork",
            "ExecStartPost=/bin/sh -c 'until /sbin/nbd-client -c \"$$1\" >/dev/null; do sleep 1; done'"
            f" wait-for-device {device}",
            f"ExecStop=/sbin/nbd-client -nonetlink -d {device}",
            "Restart=on-failure",
            "RestartSec=5",
            "TimeoutStartSec=120",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
        ]
    )


def nbd_device(topo: Topology, export: ExportPlan) -> str:
    """/dev/nbdN, N the export's place among the stack's NBD exports: the same on every
    member and at every boot, since only these units attach NBD devices here."""
    index = [e.name for e in topo.exports if e.protocol == "nbd"].index(export.name)
    return f"/dev/nbd{index}"


@dataclass(frozen=True)
class NbdProtocol:
    name: str = "nbd"

    def server(self, topo: Topology, export: ExportPlan) -> NodeScript:
        return node_script(
            f"export-nbd-{export.name}",
            "export_nbd.sh",
            "export_nbd_delete.sh",
            export_name=export.name,
            device=export.device,
            listen_address=str(export.server_address),
            port=export.port,
            config_file=config_path(export),
            config=server_config(export, allow_path(export)),
            allow_file=allow_path(export),
            allow_list=allow_list(topo),
            unit_name=server_unit_name(export),
            unit_file=f"{UNIT_DIR}/{server_unit_name(export)}",
            unit=server_unit(export),
        )

    def client(self, topo: Topology, export: ExportPlan, member: Member) -> NodeScript:
        device = self.device(topo, export, member)
        return node_script(
            f"import-nbd-{export.name}",
            "import_nbd.sh",
            "import_nbd_delete.sh",
            export_name=export.name,
            server_address=str(export.server_address),
            port=export.port,
            device=device,
            modules_file=f"/etc/modules-load.d/gfs2-nbd-{export.name}.conf",
            unit_name=client_unit_name(export),
            unit_file=f"{UNIT_DIR}/{client_unit_name(export)}",
            unit=client_unit(export, device),
        )

    def device(self, topo: Topology, export: ExportPlan, member: Member) -> str:
        return nbd_device(topo, export)

    def resize(self, topo: Topology, export: ExportPlan) -> tuple[str, str]:
        # nbd-server fixes an export's size per connection at the handshake, and
        # nbd-client -persist exits when a reconnect finds another size.
        return ("reconnect", client_unit_name(export))


NBD = NbdProtocol()
