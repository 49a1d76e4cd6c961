"""Node scripts every guest gets, whatever the cluster generation."""

from __future__ import annotations

from typing import Optional

from render.domain import logged_console
from render.host import local_libvirt_uri
from render.script import NodeScript, node_script
from spec.topology import Guest, Topology

# Bounds of the boot watch, in seconds. Both are for TCG boot under load: every guest of
# a stack starts at once, and under software emulation they share the host's few cores.
#
# Domain started -> the kernel's banner on ttyS0. About a second for one guest on an idle
# host (the direct-boot kernel is uncompressed); 90 s leaves room for a host whose cores
# are all busy emulating the guests booting beside it, and is still short against the
# minutes a hung guest would otherwise cost before the SSH dials give up.
BOOT_OUTPUT_SECONDS = 90
# The banner -> sshd answering. 25-30 s for one 1-vCPU guest on an idle host
# (image/README.md); a stack's guests booting together on two cores take several times
# that. 420 s is the bound image/boot-test.sh gives one TCG boot.
BOOT_SSH_SECONDS = 420
# The kernel's first console line (printk of linux_banner, at KERN_NOTICE: shown on the
# console unless "quiet", which our kernel command line never has).
KERNEL_BANNER = "Linux version"
SSH_PORT = 22


def hosts_lines(topo: Topology) -> list[str]:
    """Cluster nodes and export servers by name, as corosync/cman and the imports use them."""
    return [f"{g.address} {g.name}" for g in topo.guests]


def base(topo: Topology) -> NodeScript:
    selinux = topo.selinux if topo.spec.image.has_selinux else "none"
    return node_script("base", "guest_base.sh", "guest_base_delete.sh", hosts=hosts_lines(topo), selinux=selinux)


def fence_key(topo: Topology) -> NodeScript:
    """Writes the key from stdin (base64) where fence_xvm looks for it."""
    return node_script("fence-key", "fence_key.sh", "fence_key_delete.sh", key_path=topo.fencing.member_key_path)


def ready() -> NodeScript:
    return node_script("ready", "guest_ready.sh", "nothing.sh")


def cluster_status() -> NodeScript:
    return node_script("status", "cluster_status.sh", "nothing.sh")


def boot_watch(topo: Topology, guest: Guest) -> Optional[NodeScript]:
    """Run on the guest's hypervisor right after its domain is created: resets a guest
    hung in early boot once, and fails naming the domain and its console log when it
    still does not come up. None where no console log shows the early boot: on
    hypervisors other than libvirt's QEMU driver (render/domain.py logged_console), and
    for images that boot themselves, whose own kernel command line may not print on
    ttyS0 (a silent healthy guest would be reset)."""
    log = logged_console(guest)
    if log is None or topo.spec.image.boot != "direct":
        return None
    return boot_watch_script(
        domain=guest.domain,
        uri=local_libvirt_uri(guest.hypervisor),
        console_log=log,
        address=str(guest.address),
    )


def boot_watch_script(
    domain: str,
    uri: str,
    console_log: str,
    address: str,
    ssh_port: int = SSH_PORT,
    output_seconds: int = BOOT_OUTPUT_SECONDS,
    ssh_seconds: int = BOOT_SSH_SECONDS,
) -> NodeScript:
    """The boot watch for one domain (boot_watch fills it in from the topology). It
    leaves nothing behind: its delete has nothing to undo."""
    return node_script(
        "boot-watch",
        "host_boot_watch.sh",
        "nothing.sh",
        domain=domain,
        uri=uri,
        console_log=console_log,
        address=address,
        ssh_port=ssh_port,
        output_seconds=output_seconds,
        ssh_seconds=ssh_seconds,
        kernel_mark=KERNEL_BANNER,
    )
