"""Growing the shared storage (render/storage_size.py): shellcheck, which steps a raised
size re-runs (under mocks: every resource the program registers, before and after), and
what the hypervisor's disk step does, run for real against a stand-in `virsh` first on
PATH (inside the test only) that records every call."""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path

import pytest

from conftest import program, shellcheck, stack_config, topology_of
from render import storage_size
from render.script import node_script, values_of
from spec.topology import Topology

GIB = 1024**3
# SC2034: create and delete share one set of values, each uses part of them.
# SC2016: the cib tool is a Python program quoted as one value.
EXCLUDED = ("SC2034", "SC2016")


def steps(topo: Topology) -> dict[str, object]:
    server = next(g for g in topo.guests if g.data_disks)
    out = {f"disk-{d.export}": storage_size.data_disk(topo, server, d) for d in server.data_disks}
    out |= {f"member-{m.name}": storage_size.member_devices(topo, m) for m in topo.members}
    out |= {f"grow-{fs.fs_name}": storage_size.filesystem(topo, fs) for fs in topo.filesystems}
    return out


@pytest.mark.usefixtures("local_key_files")
@pytest.mark.parametrize("stack", ["local", "globex-prod"])  # NBD, iSCSI
def test_rendered_steps_pass_shellcheck(stack):
    for name, script in steps(topology_of(stack_config(stack))).items():
        for text in (script.create, script.delete):
            res = shellcheck(text, *EXCLUDED)
            assert res.returncode == 0, f"{name}: {res.stdout}"


@pytest.mark.usefixtures("local_key_files")
def test_nbd_members_reconnect_and_iscsi_members_rescan():
    local = topology_of(stack_config("local"))
    nbd = values_of(storage_size.member_devices(local, local.members[1]).create)
    assert nbd["DEVICES"] == f"/dev/nbd0 {4 * GIB} reconnect gfs2-nbd-import-data.service storage.exports[0].sizeGib"
    assert nbd["FIRST"] == "0"
    globex = topology_of(stack_config("globex-prod"))
    iscsi = values_of(storage_size.member_devices(globex, globex.members[0]).create)
    assert iscsi["FIRST"] == "1"
    assert [line.split()[2] for line in iscsi["DEVICES"].splitlines()] == ["rescan", "rescan"]


def test_the_legacy_generation_gets_no_member_steps_and_its_disk_refuses_to_grow():
    acme = topology_of(stack_config("acme-prod"))
    assert all(storage_size.member_devices(acme, m) is None for m in acme.members)
    assert all(storage_size.filesystem(acme, fs) is None for fs in acme.filesystems)
    server = next(g for g in acme.guests if g.data_disks)
    refusal = values_of(storage_size.data_disk(acme, server, server.data_disks[0]).create)["REFUSAL"]
    assert "current generation" in refusal


def _commands(config: dict) -> dict[str, str]:
    graph = program("local", config)
    return {r.name: r.inputs.get("create", "") for r in graph.commands()}


@pytest.mark.usefixtures("local_key_files")
def test_a_raised_size_reruns_the_size_steps_and_nothing_else():
    before = copy.deepcopy(stack_config("local"))
    after = copy.deepcopy(before)
    after["storage"]["exports"][0]["sizeGib"] = 6
    old, new = _commands(before), _commands(after)
    assert old.keys() == new.keys()
    rerun = sorted(name.removeprefix("local-dev-") for name in old if old[name] != new[name])
    assert rerun == ["m1-storage-size", "m2-storage-size", "m3-storage-size", "s1-data-size", "shared-grow"]
    graph = program("local", after)
    data = graph.named("s1-data")
    # A member's step is deleted with the member before its guest (the delete dials it).
    # Directly: when a member goes, the steps between them no longer name it.
    for m in ("m1", "m2", "m3"):
        assert graph.named(f"{m}-base").urn in graph.named(f"{m}-storage-size").dependencies, m
    # The provider replaces a volume whose size changes; the step grows it instead.
    assert data.inputs["size"] == 6 * GIB and "size" in data.ignore_changes, "the data volume would be replaced"


# --- the hypervisor's disk step, against a stand-in virsh ------------------------------

FAKE_VIRSH = r"""#!/bin/bash
# Records its arguments; answers as libvirt does for disks the provider attached by pool
# and volume name (<disk type='volume'>), vol-info and domstate from the environment.
echo "$*" >>"$VIRSH_LOG"
args=" $* "
case $args in
  *" domblklist "*) printf 'volume disk vda g2-t-dev-s1-root.qcow2\nvolume disk vdb g2-t-dev-s1-data.raw\n' ;;
  *" dumpxml "*) printf "<domain>\n  <disk type='volume' device='disk'>\n    <source pool='g2-t-dev' volume='g2-t-dev-s1-root.qcow2'/>\n  </disk>\n  <disk type='volume' device='disk'>\n    <source pool='g2-t-dev' volume='g2-t-dev-s1-data.raw'/>\n  </disk>\n</domain>\n" ;;
  *" vol-info "*) printf 'Name: x\nCapacity: %s bytes\n' "$CAPACITY" ;;
  *" domstate "*) echo "$STATE" ;;
esac
"""


def disk_script(size_gib: int, refusal: str = "") -> str:
    return node_script(
        "disk-size-data", "host_data_disk_size.sh", "nothing.sh",
        uri="qemu:///system", domain="g2-t-dev-s1", volume="g2-t-dev-s1-data.raw",
        size_bytes=size_gib * GIB, size_key="storage.exports[0].sizeGib", refusal=refusal,
    ).create


def run_disk_step(tmp_path: Path, script: str, capacity_gib: int, state: str = "running"):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "virsh").write_text(FAKE_VIRSH)
    (bin_dir / "virsh").chmod(0o755)
    log = tmp_path / "virsh.log"
    log.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "VIRSH_LOG": str(log),
           "CAPACITY": str(capacity_gib * GIB), "STATE": state}
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, check=False)
    return res, log.read_text().splitlines()


def test_the_disk_grows_in_place_while_the_domain_runs(tmp_path):
    res, calls = run_disk_step(tmp_path, disk_script(6), 4)
    assert res.returncode == 0, res.stderr
    assert f"-q -c qemu:///system blockresize g2-t-dev-s1 vdb {6 * GIB}B" in calls
    assert "result: changed: grew g2-t-dev-s1-data.raw from 4.00 GiB to 6.00 GiB" in res.stdout


def test_a_shut_off_domains_disk_is_resized_as_a_volume(tmp_path):
    res, calls = run_disk_step(tmp_path, disk_script(6), 4, state="shut off")
    assert res.returncode == 0, res.stderr
    assert f"-q -c qemu:///system vol-resize --pool g2-t-dev g2-t-dev-s1-data.raw {6 * GIB}" in calls
    assert not [c for c in calls if "blockresize" in c]


def test_the_same_size_changes_nothing(tmp_path):
    res, calls = run_disk_step(tmp_path, disk_script(4), 4)
    assert res.returncode == 0, res.stderr
    assert "result: unchanged" in res.stdout
    assert not [c for c in calls if "resize" in c]


def test_a_smaller_size_is_refused_naming_the_key_and_nothing_is_resized(tmp_path):
    res, calls = run_disk_step(tmp_path, disk_script(3), 4)
    assert res.returncode != 0
    assert "storage.exports[0].sizeGib" in res.stderr and "never shrunk" in res.stderr
    assert not [c for c in calls if "resize" in c]


def test_a_growth_the_stack_cannot_carry_out_is_refused_before_the_disk_changes(tmp_path):
    res, calls = run_disk_step(tmp_path, disk_script(6, refusal="no growth in place here"), 4)
    assert res.returncode != 0
    assert "storage.exports[0].sizeGib" in res.stderr and "no growth in place here" in res.stderr
    assert not [c for c in calls if "resize" in c]
