"""The whole program under Pulumi mocks: what it registers, in which order, and that no
secret reaches a command's text."""

from __future__ import annotations

from collections import Counter

import pytest

from bad_cases import Case, _external
from conftest import AUTH_KEY, FENCE_KEY, example_stacks, program as run, stack_config
from program_graph import Registered, is_secret, reveal

pytestmark = pytest.mark.usefixtures("local_key_files")


EXPECTED = {
    # stack: {type: count}
    "local": {
        "libvirt:index/network:Network": 1,
        "libvirt:index/domain:Domain": 4,
        "libvirt:index/volume:Volume": 1 + 4 + 1,  # image, roots, one data disk
        "libvirt:index/pool:Pool": 1,
        # lab guard, fence_virtd, boot hook, the guests' boot watches, the data disk's size
        # and the guests' machine sizes on this machine
        "command:local:Command": 3 + 4 + 1 + 4,
        # per guest: ready + base (8); export 1; imports 3; fence keys 3; rosters 3 + joins 3
        # + fence devices 3; locking 3 + ready 1; journals 1; vg 1; mkfs 1; mount 1; status 1;
        # storage sizes 3 + grow 1
        "command:remote:Command": 8 + 1 + 3 + 3 + 9 + 4 + 1 + 1 + 1 + 1 + 1 + 3 + 1,
    },
    "globex-prod": {
        "libvirt:index/network:Network": 0,
        "libvirt:index/domain:Domain": 6,
        # roots and data disks; pool and image come from the platform stack
        "libvirt:index/volume:Volume": 6 + 2,
        "libvirt:index/pool:Pool": 0,
        "command:local:Command": 0,
        # ready+base 12; boot watches 6 (remote host); exports 2; imports 8; lab guard 1 +
        # bridge 1 + fence_virtd 1 + boot hook 1 (remote host); fence keys 4; rosters 4 + joins
        # 4 + fence devices 4; locking 4+1; journals 2; vg 1; mkfs 2; mounts 2; pcsd 4; status 1;
        # data disk sizes 2 and machine sizes 6 (remote host); storage sizes 4 + grows 2
        "command:remote:Command": 12 + 6 + 2 + 8 + 4 + 4 + 12 + 5 + 2 + 1 + 2 + 2 + 4 + 1 + 2 + 6 + 4 + 2,
    },
    "acme-prod": {
        "libvirt:index/domain:Domain": 4,
        "libvirt:index/volume:Volume": 4 + 1,
        # ready+base 8; export 1; imports 3; lab guard + bridge + fence_virtd + boot hook + cpu
        # caps (3) 7;
        # fence keys 4 (gnbd1 is a cman node); cman 4; clvmd 3 + quorum 1; journals 1; vg 1;
        # mkfs 1; fstab mounts 3; ricci 3; status 1; data disk size 1 and machine sizes 4 (both
        # refuse a change here)
        "command:remote:Command": 8 + 1 + 3 + 7 + 4 + 4 + 4 + 1 + 1 + 1 + 3 + 3 + 1 + 1 + 4,
    },
}


@pytest.mark.parametrize("stack", example_stacks())
def test_resource_counts(stack):
    prog = run(stack)
    counts = Counter(r.type for r in prog.by_urn.values())
    for typ, n in EXPECTED[stack].items():
        assert counts[typ] == n, f"{typ}: {counts[typ]} != {n}"


@pytest.mark.parametrize("stack", ["local", "globex-prod"])
def test_current_generation_order(stack):
    prog = run(stack)
    topo_members = [r for r in prog.commands() if r.name.endswith("-ready") and "-locking-" in r.name]
    cluster_ready = topo_members[0]
    for lock in [r for r in prog.commands() if "-locking-m" in r.name]:
        assert prog.depends(cluster_ready, lock), f"lock manager setup {lock.name} before cluster ready"
    for key in [r for r in prog.commands() if "-fencing-key-" in r.name]:
        assert prog.depends(cluster_ready, key), "fencing armed before cluster ready"
    for mkfs in [r for r in prog.commands() if r.name.endswith("-mkfs")]:
        assert prog.depends(mkfs, cluster_ready), "mkfs after lock start on every member (and after stonith)"
        mount = prog.named(mkfs.name.replace("-mkfs", "-mount"))
        assert prog.depends(mount, mkfs), "mounts after mkfs"
    for export in [r for r in prog.commands() if r.name.endswith("-export")]:
        imports = [r for r in prog.commands() if r.name.startswith(export.name.replace("-export", "-import-"))]
        assert imports and all(prog.depends(i, export) for i in imports), "exports before imports"


@pytest.mark.parametrize("stack", ["local", "globex-prod"])
def test_a_member_joins_ready_for_what_the_cluster_runs(stack):
    """Every member's config is written before any joins; a member joins once its shared
    disks are attached, its LVM locking set, every file system has its journal, and (but
    the first) its fence device exists: what a member added to a running cluster needs,
    since pacemaker starts the cluster's clones on it as soon as it joins."""
    prog = run(stack)
    rosters = [r for r in prog.commands() if r.name.endswith("-roster")]
    members = sorted(r.name.split("-membership-")[1].removesuffix("-roster") for r in rosters)
    journals = [r for r in prog.commands() if r.name.endswith("-journals")]
    assert rosters and journals
    first = members[0]
    for m in members:
        join = prog.named(f"-membership-{m}")
        assert all(prog.depends(join, r) for r in rosters), f"{m} joins before every roster is written"
        assert all(prog.depends(join, j) for j in journals), f"{m} joins before its journals"
        assert prog.depends(join, prog.named(f"-locking-{m}")), f"{m} joins before its LVM locking is set"
        for imp in [r for r in prog.commands() if "-import-" in r.name and r.name.endswith(f"-{m}")]:
            assert prog.depends(join, imp), f"{m} joins before {imp.name}"
        device = prog.named(f"-membership-{m}-fence-device")
        assert prog.depends(device, prog.named(f"-membership-{first}")), "fence devices need pacemaker on the first"
        if m != first:
            assert prog.depends(join, device), f"{m} joins before its fence device exists"
    joins = [prog.named(f"-membership-{m}") for m in members]
    assert not any(prog.depends(r, j) for r in rosters for j in joins), "a roster waits for a join"


def test_legacy_generation_order():
    prog = run("acme-prod")
    quorum = prog.named("-locking-ready")
    for cman in [r for r in prog.commands() if "-membership-" in r.name]:
        assert prog.depends(quorum, cman)
    mkfs = prog.named("-www-mkfs")
    assert prog.depends(mkfs, quorum)
    for mount in [r for r in prog.commands() if "-www-mount-" in r.name]:
        assert prog.depends(mount, mkfs)


def _texts(r: Registered) -> str:
    return "\n".join(str(r.inputs.get(k, "")) for k in ("create", "update", "delete", "connection", "environment"))


@pytest.mark.parametrize("stack", example_stacks())
def test_no_secret_in_any_command_text(stack):
    prog = run(stack)
    secret_values = [FENCE_KEY, AUTH_KEY, "TEST-ONLY-SSH-KEY-MATERIAL"]
    for r in prog.commands():
        text = r.inputs.get("create", "") + r.inputs.get("delete", "") + r.inputs.get("update", "")
        for value in secret_values:
            assert value not in text, f"{r.name} carries a secret in its command text"
    with_stdin = [r for r in prog.commands() if r.inputs.get("stdin")]
    assert with_stdin, "the fence key and authkey travel on stdin"


def _dialled(prog, suffix: str) -> dict:
    return reveal(prog.named(suffix).inputs["connection"])


def test_commands_dial_the_endpoints_the_topology_decides():
    prog = run("globex-prod", Case("wiring", "globex-prod", tuple(_external("10.23.0.50")), "", "").config())
    guest, server, host = (_dialled(prog, s) for s in ("-m1-base", "-lun1-export", "-kvm1-net-guard"))
    assert (guest["host"], guest["user"]) == ("10.23.0.21", "root")
    assert (guest["proxy"]["host"], guest["proxy"]["user"]) == ("kvm1.example.net", "root")
    assert guest["proxy"]["privateKey"] == guest["privateKey"]
    assert server["host"] == "10.23.0.50" and "proxy" not in server
    assert host["host"] == "kvm1.example.net" and "proxy" not in host
    local = run("local")
    assert prog.named("-kvm1-net-guard").type == "command:remote:Command"
    assert local.named("-here-net-guard").type == "command:local:Command"
    assert "proxy" not in _dialled(local, "-m1-base")


def test_secrets_reach_the_nodes_on_stdin_as_pulumi_secrets():
    prog = run("local")
    stdins = [r.inputs["stdin"] for r in prog.commands() if r.inputs.get("stdin")]
    assert all(is_secret(v) for v in stdins)
    values = [reveal(v) for v in stdins]
    assert FENCE_KEY in values and AUTH_KEY in values


def test_two_tenants_share_no_names_bridges_or_fence_ports():
    a = run("local")
    other = stack_config("local")
    other["tenant"], other["network"]["vlanId"] = "other", 11
    other["network"]["cidr"] = "10.77.11.0/24"
    b = run("local", other)

    def libvirt_names(prog):
        return {r.inputs.get("name") for r in prog.by_urn.values() if r.type.startswith("libvirt:index/")}

    assert not libvirt_names(a) & libvirt_names(b)
    bridge = lambda prog: prog.of_type("libvirt:index/network:Network")[0].inputs["bridge"]  # noqa: E731
    assert bridge(a) != bridge(b)
    fence = lambda prog: [r for r in prog.commands() if r.name.endswith("fence-virtd")][0].inputs["create"]  # noqa: E731
    assert "PORT=20010" in fence(a) and "PORT=20011" in fence(b)


def test_tenants_on_a_platform_use_its_pool_and_image():
    prog = run("globex-prod")
    roots = [r for r in prog.of_type("libvirt:index/volume:Volume") if r.inputs["name"].endswith("-root.qcow2")]
    assert roots and all(r.inputs["pool"] == "g2-images" for r in roots)
    assert all(r.inputs["baseVolumeId"] == "/var/lib/libvirt/gfs2-cluster/images/g2-base.qcow2" for r in roots)


def test_a_platform_without_the_hypervisor_stops_the_program():
    from program_graph import capture

    from conftest import SECRETS

    with pytest.raises(Exception, match="platform stack organization/gfs2-platform/shared: output (pools|baseVolumes) has no hypervisor 'kvm1'"):
        capture("globex-prod", stack_config("globex-prod"), SECRETS, stack_outputs={})


def test_user_data_is_protected_unless_the_stack_opts_out():
    prog = run("globex-prod")
    data_volumes = [r for r in prog.of_type("libvirt:index/volume:Volume") if r.inputs["name"].endswith(".raw")]
    assert data_volumes and all(r.protect for r in data_volumes)
    assert all(r.protect for r in prog.commands() if r.name.endswith(("-create", "-mkfs")))
    lab = run("local")
    assert not any(r.protect for r in lab.by_urn.values())


def test_every_child_stays_inside_its_component():
    prog = run("local")
    roots = [r for r in prog.by_urn.values() if r.type == "gfs2-cluster:index:TenantCluster"]
    assert len(roots) == 1
    for r in prog.by_urn.values():
        if r is not roots[0]:
            assert r.parent and not r.parent.endswith("pulumi:pulumi:Stack::gfs2-cluster-local"), f"{r.name} escapes"
