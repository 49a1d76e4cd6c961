"""corosync.conf for the current generation: corosync 3 over knet, one link per member.

Encryption is on, so every member also needs the same authkey at AUTHKEY_PATH (the
corosync default that this file relies on); it is distributed separately and never
appears here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from spec.topology import Member, Topology

AUTHKEY_PATH = "/etc/corosync/authkey"
# The directory each distribution's corosync package creates for its log file.
LOGFILE_BY_OS_FAMILY = {
    "debian12": "/var/log/corosync/corosync.log",
    "rhel9": "/var/log/cluster/corosync.log",
}

Value = Union[str, int]

# totem.token in ms for members under software emulation (domain type qemu, TCG). With
# corosync's default (3000 ms + 650 ms per member above two) a busy TCG guest misses the
# token while the others are writing to GFS2, is declared lost and fenced: seen on the
# local stack (4 TCG guests on 2 host cores) during concurrent appends. Guests with
# hardware virtualisation keep the default.
EMULATED_TOKEN_MS = 10000


@dataclass(frozen=True)
class Section:
    """A named block of corosync.conf: name { key: value ... nested blocks }."""

    name: str
    entries: tuple[Union[tuple[str, Value], "Section"], ...]


def corosync_conf(topo: Topology) -> str:
    sections = (_totem(topo), _nodelist(topo), _quorum(topo), _logging(topo))
    return "\n".join("\n".join(_format(s)) + "\n" for s in sections)


def _totem(topo: Topology) -> Section:
    return Section(
        "totem",
        (
            ("version", 2),
            ("cluster_name", topo.cluster_name),
            ("transport", "knet"),
            ("crypto_cipher", "aes256"),
            ("crypto_hash", "sha256"),
            *_token(topo),
        ),
    )


def _token(topo: Topology) -> tuple[tuple[str, Value], ...]:
    emulated = topo.member_hypervisor.domain_type == "qemu"
    return (("token", EMULATED_TOKEN_MS),) if emulated else ()


def _nodelist(topo: Topology) -> Section:
    return Section("nodelist", tuple(_node(m) for m in topo.members))


def _node(member: Member) -> Section:
    return Section("node", (("name", member.name), ("nodeid", member.nodeid), ("ring0_addr", str(member.address))))


def _quorum(topo: Topology) -> Section:
    # two_node also turns on wait_for_all: after a full stop both members must be
    # back before either has quorum, so a lone member cannot fence its peer at boot.
    two_node = (("two_node", 1),) if topo.two_node else ()
    return Section("quorum", (("provider", "corosync_votequorum"), *two_node))


def _logging(topo: Topology) -> Section:
    return Section(
        "logging",
        (
            ("to_syslog", "yes"),
            ("to_logfile", "yes"),
            ("logfile", LOGFILE_BY_OS_FAMILY[topo.spec.image.os_family]),
            ("timestamp", "on"),
        ),
    )


def _format(section: Section, depth: int = 0) -> list[str]:
    pad = "    " * depth
    lines = [f"{pad}{section.name} {{"]
    for entry in section.entries:
        if isinstance(entry, Section):
            lines += _format(entry, depth + 1)
        else:
            key, value = entry
            lines.append(f"{pad}    {key}: {value}")
    lines.append(f"{pad}}}")
    return lines
