"""Hypervisor-side scripts of one tenant: its VLAN bridge, its fence_virtd, the lab guard,
and the libvirt hook that brings them back after the hypervisor boots."""

from __future__ import annotations

import shlex

from render.fence_virt import fence_virt_conf
from render.script import NodeScript, node_script
from spec.model import Hypervisor
from spec.topology import Topology


def forward_chain(topo: Topology) -> str:
    """iptables chain of this tenant on the hypervisor (max 28 characters)."""
    return f"G2-{topo.spec.network.vlan_id}"


def vlan_network(topo: Topology, hv: Hypervisor) -> NodeScript:
    net = topo.spec.network
    return node_script(
        "tenant-network",
        "host_vlan_network.sh",
        "host_vlan_network_delete.sh",
        trunk=hv.trunk,
        vlan_id=net.vlan_id,
        bridge=topo.bridge,
        host_cidr=f"{topo.host_address}/{net.cidr.prefixlen}",
        chain=forward_chain(topo),
    )


def local_libvirt_uri(hv: Hypervisor) -> str:
    """The hypervisor's own URI as seen on the hypervisor (fence_virtd runs there)."""
    return f"{hv.driver}:///system"


def fence_listener(topo: Topology, hv: Hypervisor) -> NodeScript:
    """fence_virtd for this tenant; the key arrives base64 on stdin."""
    directory = topo.names.host_dir
    conf = fence_virt_conf(topo, f"{directory}/fence_xvm.key", topo.bridge, local_libvirt_uri(hv))
    return node_script(
        "fence-listener",
        "host_fence_listener.sh",
        "host_fence_listener_delete.sh",
        dir=directory,
        conf=conf,
        bridge=topo.bridge,
        port=topo.fencing.port,
        vlan_id=topo.spec.network.vlan_id,
    )


def xen_cpu_cap(hv: Hypervisor, domain: str, cap_percent: int) -> NodeScript:
    return node_script(
        "cpu-cap", "host_xen_cap.sh", "host_xen_cap_delete.sh", uri=local_libvirt_uri(hv), domain=domain, cap=cap_percent
    )


# Policy-rule priority of the lab guard; its block rule takes the next one. Ahead of the
# main table (32766), so a lab address is decided before the default route is looked at.
LAB_GUARD_PRIORITY = 4242


def lab_guard(topo: Topology) -> NodeScript:
    """No packet for the tenant's CIDR leaves by the default route, bridge or not: the CIDR
    takes only routes at least as specific as itself (the bridge's), else is unreachable.
    Refuses a CIDR holding the hypervisor's resolver, addresses or gateways."""
    cidr = topo.spec.network.cidr
    return node_script(
        "lab-guard",
        "host_lab_guard.sh",
        "host_lab_guard_delete.sh",
        cidr=str(cidr),
        bridge=topo.bridge,
        suppress_prefixlength=cidr.prefixlen - 1,
        lookup_priority=LAB_GUARD_PRIORITY,
        block_priority=LAB_GUARD_PRIORITY + 1,
    )


# libvirtd waits for its hook: the hooks of a tenant's domains, started together, wait
# for each other's steps this long at most.
BOOT_HOOK_LOCK_WAIT = 120


def boot_hook_text(topo: Topology, hv: Hypervisor, with_fence_listener: bool) -> str:
    """libvirt runs it before it starts any domain (at boot, its autostart): when the
    domain is this tenant's, what a reboot lost comes back first, by the scripts `pulumi
    up` ran: the lab guard and the VLAN bridge before the domain starts, fence_virtd
    (which talks to libvirt, so never from inside the hook's call) in the background.
    It never stops a domain from starting: a failure is only logged."""
    names, directory = topo.names, topo.names.host_dir
    before = [lab_guard(topo).create]
    if topo.spec.network.mode == "vlan":
        before.append(vlan_network(topo, hv).create)
    # 9>&-: the lock stays with this hook; a daemon a step starts must not inherit it, or
    # it would hold it for good and the next domain's hook (and libvirtd) would wait forever.
    run_before = "\n".join(f"  bash -c {shlex.quote(script)} 9>&- || echo 'gfs2-cluster: boot step failed'"
                           for script in before)
    lines = [
        "#!/bin/bash",
        f"# gfs2-cluster, tenant {names.stack_id}: written by `pulumi up`, removed by its destroy.",
        f"[[ $1 == {names.domain('')}* && $2 == prepare && $3 == begin ]] || exit 0",
        f"log={shlex.quote(directory + '/boot-hook.log')}",
        f"lock={shlex.quote(directory + '/boot-hook.lock')}",
        '(',
        f'  flock -w {BOOT_HOOK_LOCK_WAIT} 9 || echo "gfs2-cluster: boot hook lock busy, going on"',
        '  date --utc "+%FT%TZ $1 starts"',
        run_before,
        ') 9>"$lock" </dev/null >>"$log" 2>&1',
    ]
    if with_fence_listener:
        key = shlex.quote(f"{directory}/fence_xvm.key")
        listener = shlex.quote(fence_listener(topo, hv).create)
        lines += [
            '(',
            f'  flock -w {BOOT_HOOK_LOCK_WAIT} 9 || echo "gfs2-cluster: boot hook lock busy, going on"',
            f'  base64 -w0 {key} | bash -c {listener} 9>&- || echo "gfs2-cluster: fence_virtd did not start"',
            ') 9>"$lock" </dev/null >>"$log" 2>&1 &',
        ]
    lines.append("exit 0")
    return "\n".join(lines)


def boot_hook(topo: Topology, hv: Hypervisor, with_fence_listener: bool) -> NodeScript:
    return node_script(
        "boot-hook",
        "host_boot_hook.sh",
        "host_boot_hook_delete.sh",
        hook_path=topo.names.boot_hook(hv.driver),
        hook=boot_hook_text(topo, hv, with_fence_listener),
    )
