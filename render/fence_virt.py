"""fence_virt.conf for this tenant's own fence_virtd on the hypervisor (all generations).

Each tenant gets its own daemon (fence_virtd -f THIS_FILE -p PIDFILE) with its own key,
multicast group and port, listening on the tenant's bridge only. Its static map (the
`groups` section) lets it fence only this tenant's cluster nodes, and only on request
from their addresses. Pure: no Pulumi import.
"""

from __future__ import annotations

from typing import Union

from spec.topology import Topology

# A block body: settings (name, value) and sub-blocks (name, body), in order.
Body = list[tuple[str, Union[str, "Body"]]]

# fence_virtd's static map copies group entries into 128-byte buffers.
MAX_VALUE = 127


def fence_virt_conf(topo: Topology, key_file: str, interface: str, libvirt_uri: str) -> str:
    """key_file: path on the hypervisor; interface: the tenant bridge; libvirt_uri: the
    hypervisor's own libvirt, as seen from the hypervisor (qemu:///system, xen:///system)."""
    if interface != topo.bridge:
        # Listening elsewhere would take requests from another tenant's segment.
        raise ValueError(f"fence_virtd of {topo.names.stack_id} must listen on its bridge {topo.bridge}, not {interface}")
    header = (
        f"# fence_virtd of tenant {topo.names.stack_id}: fences only its cluster nodes, on\n"
        f"# request from them only. Rendered by gfs2-cluster; edit the stack config instead.\n"
    )
    sections: Body = [
        ("fence_virtd", [("listener", "multicast"), ("backend", "libvirt")]),
        ("listeners", [("multicast", _multicast(topo, key_file, interface))]),
        ("backends", [("libvirt", [("uri", libvirt_uri)])]),
        ("groups", [("group", _group(topo))]),
    ]
    return header + "\n".join(_block(name, body, 0) for name, body in sections)


def _multicast(topo: Topology, key_file: str, interface: str) -> Body:
    plan = topo.fencing
    return [
        ("key_file", key_file),
        ("address", str(plan.multicast_address)),
        ("port", str(plan.port)),
        ("interface", interface),
        ("family", "ipv4"),
        # The weakest hash and challenge-response the daemon accepts.
        ("hash", "sha256"),
        ("auth", "sha256"),
    ]


def _group(topo: Topology) -> Body:
    # `uuid` entries are what a request may fence: fence_virtd compares them
    # case-insensitively with the requested domain, a name as well as a UUID.
    # `ip` entries are the source addresses allowed to ask.
    nodes = topo.cluster_nodes
    return (
        [("name", topo.names.stack_id)]
        + [("uuid", node.domain) for node in nodes]
        + [("ip", str(node.address)) for node in nodes]
    )


def _block(name: str, body: Body, depth: int) -> str:
    indent = "\t" * depth
    lines = [f"{indent}{name} {{"]
    for key, value in body:
        if isinstance(value, list):
            lines.append(_block(key, value, depth + 1).rstrip("\n"))
        else:
            lines.append(f"{indent}\t{key} = {_quoted(key, value)};")
    lines.append(f"{indent}}}")
    return "\n".join(lines) + "\n"


def _quoted(key: str, value: str) -> str:
    # The lexer reads a value as "[^"]+": no quote inside, and never empty.
    if not value or '"' in value or "\n" in value or len(value) > MAX_VALUE:
        raise ValueError(f"fence_virt.conf {key}: {value!r} cannot be written as a value")
    return f'"{value}"'
