"""A guest's vCPUs and memory changed on a running cluster: one member at a time, on its
hypervisor. The libvirt provider would replace the domain (a hard power-off of every
changed member at once), so the domain ignores those two inputs and this step applies
them: the member leaves the cluster cleanly (pacemaker stopped, then corosync), powers
off, gets the new size in its inactive definition, boots, and is back (the cluster stack
starts at boot) with every clone started on it before the next member goes.

The SSH key for the member arrives on stdin. A storage server's size, and the legacy
generation's members, are refused when they change: every import hangs on the server,
and cman's services are not stopped this way.
"""

from __future__ import annotations

from render import pacemaker
from render.generations.current import CLUSTER_TIMEOUT, cib_tool
from render.guest import boot_watch
from render.host import local_libvirt_uri
from render.script import NodeScript, node_script
from spec.topology import Guest, Topology

# Leave, power off, boot under emulation, rejoin and remount.
RESTART_TIMEOUT = 900


def _refusal(topo: Topology, guest: Guest) -> str:
    if guest.role != "member":
        return "a storage server is not restarted on a running cluster (every member's shared disk hangs on it)"
    if topo.spec.generation != "current":
        return "resizing members one at a time is built for the current generation (corosync and pacemaker)"
    return ""


def size_key(topo: Topology, guest: Guest) -> str:
    if guest.role == "member":
        return "members"
    index = [s.name for s in topo.spec.storage.servers].index(guest.name)
    return f"storage.servers[{index}]"


def machine_size(topo: Topology, guest: Guest) -> NodeScript:
    """On GUEST's hypervisor; members one after the other (components/tenant_cluster.py)."""
    clones = []
    if guest.role == "member" and topo.spec.generation == "current":
        clones = [pacemaker.clone_id(pacemaker.LOCKING_GROUP)]
        clones += [pacemaker.clone_id(pacemaker.fs_id(fs)) for fs in topo.filesystems]
    # The same watch as at creation: a guest hung in early boot under emulation is reset once.
    watch = boot_watch(topo, guest)
    return node_script(
        f"machine-size-{guest.name}",
        "host_machine_size.sh",
        "nothing.sh",
        uri=local_libvirt_uri(guest.hypervisor),
        domain=guest.domain,
        node=guest.name,
        address=str(guest.address),
        ssh_user=topo.spec.ssh.user,
        vcpu=guest.size.vcpu,
        memory_kib=guest.size.memory_mib * 1024,
        size_key=size_key(topo, guest),
        refusal=_refusal(topo, guest),
        cib_tool=cib_tool(),
        boot_watch=watch.create if watch is not None else "",
        clones=clones,
        timeout=RESTART_TIMEOUT,
        cluster_timeout=CLUSTER_TIMEOUT,
    )
