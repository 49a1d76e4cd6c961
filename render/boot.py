"""How a guest made from the builtin image learns who it is: its kernel command line.

image/build.sh puts a unit in the image that reads gfs2.* parameters at every boot, so
one image serves every guest of every tenant without cloud-init.
"""

from __future__ import annotations

import base64
import hashlib

from spec.topology import Guest, Topology, guest_device


def kernel_cmdline(topo: Topology, guest: Guest, ssh_public_key: str) -> list[tuple[str, str]]:
    """(key, value) pairs in order; key "_" is a bare flag (the libvirt provider's form)."""
    prefix = topo.spec.network.cidr.prefixlen
    key = base64.b64encode(ssh_public_key.strip().encode()).decode()
    return [
        ("console", "ttyS0"),
        ("root", guest_device(guest.hypervisor.domain_type, "vda")),
        ("_", "rw"),
        ("gfs2.hostname", guest.name),
        ("gfs2.ip", f"{guest.address}/{prefix}"),
        ("gfs2.gw", str(topo.host_address)),
        ("gfs2.sshkey", key),
    ]


def provider_cmdlines(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    """PAIRS in the shape terraform-provider-libvirt 0.8.1 reads back from the domain
    (splitKernelCmdLine): one map of the keyed words, then one map {"_": keyless words}
    in the sorted order it writes them. Any other shape differs from the state on every
    refresh, and a changed cmdline replaces the domain."""
    keyed = dict(sorted((k, v) for k, v in pairs if k != "_"))
    if len(keyed) != len([k for k, _ in pairs if k != "_"]):
        raise ValueError("kernel command line keys must be distinct")
    keyless = sorted(v for k, v in pairs if k == "_")
    return [m for m in (keyed, {"_": " ".join(keyless)} if keyless else {}) if m]


def mac_address(domain: str) -> str:
    """A stable, locally administered MAC in QEMU's 52:54:00 range, from the domain name."""
    digest = hashlib.sha256(domain.encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])
