"""render/scripts/cib.py against the real pacemaker tools on a file-backed CIB
(CIB_file), the way node scripts use it on a member."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from lxml import etree

from conftest import require_tool, stack_config
from render.generations.current import CURRENT, cib_tool, stage
from render import pacemaker
from spec import build, load_spec


@pytest.fixture
def cib(tmp_path):
    require_tool("cibadmin")
    path = tmp_path / "cib.xml"
    empty = subprocess.run(["cibadmin", "--empty"], capture_output=True, text=True, check=True).stdout
    path.write_text(empty)
    return path


def tool(cib_path, *args):
    return subprocess.run(
        [sys.executable, "-c", cib_tool(), *args],
        env=dict(os.environ, CIB_file=str(cib_path)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def ids(cib_path, scope):
    tree = etree.parse(str(cib_path))
    return {e.get("id") for e in tree.find(f"configuration/{scope}")}


@pytest.fixture
def topo():
    return build(load_spec(stack_config("local")))


def cluster_stage(topo):
    locking = pacemaker.clone_id(pacemaker.LOCKING_GROUP)
    return stage(topo, [*(pacemaker.fence_id(m) for m in topo.members), locking], properties=True)


def test_apply_creates_the_stage_then_changes_nothing(cib, topo):
    out = tool(cib, "apply", cluster_stage(topo))
    assert "created locking-clone" in out and "property no-quorum-policy=freeze" in out
    assert ids(cib, "resources") == {"fence-m1", "fence-m2", "fence-m3", "locking-clone"}
    assert len(ids(cib, "constraints")) == 3  # each fence device avoids its own member
    assert tool(cib, "apply", cluster_stage(topo)).strip() == "pacemaker configuration unchanged"


def test_a_changed_element_is_replaced_in_place(cib, topo):
    tool(cib, "apply", cluster_stage(topo))
    changed = cluster_stage(topo).replace('value="freeze"', 'value="stop"')
    out = tool(cib, "apply", changed)
    assert out.strip() == "property no-quorum-policy=stop"


def test_stages_add_up_and_remove_only_their_own_elements(cib, topo):
    vg_clone = pacemaker.clone_id(pacemaker.lvm_id(topo.volume_groups[0]))
    fs_clone = pacemaker.clone_id(pacemaker.fs_id(topo.filesystems[0]))
    tool(cib, "apply", cluster_stage(topo))
    tool(cib, "apply", stage(topo, [vg_clone]))
    tool(cib, "apply", stage(topo, [fs_clone]))
    assert {vg_clone, fs_clone} <= ids(cib, "resources")
    tool(cib, "remove", stage(topo, [fs_clone]))
    assert fs_clone not in ids(cib, "resources") and vg_clone in ids(cib, "resources")
    assert not any(fs_clone in c for c in ids(cib, "constraints"))
    tool(cib, "remove", stage(topo, [vg_clone]))
    tool(cib, "remove", cluster_stage(topo))
    assert ids(cib, "resources") == set() and ids(cib, "constraints") == set()
    assert tool(cib, "remove", cluster_stage(topo)) == ""  # removing twice is fine


def test_the_full_configuration_pushed_in_stages_passes_crm_verify(cib, topo):
    for resource_ids, props in (
        ([*(pacemaker.fence_id(m) for m in topo.members), pacemaker.clone_id(pacemaker.LOCKING_GROUP)], True),
        ([pacemaker.clone_id(pacemaker.lvm_id(vg)) for vg in topo.volume_groups], False),
        ([pacemaker.clone_id(pacemaker.fs_id(fs)) for fs in topo.filesystems], False),
    ):
        tool(cib, "apply", stage(topo, resource_ids, properties=props))
    pushed = etree.parse(str(cib)).find("configuration")
    rendered = pacemaker.cib_configuration(topo)
    for scope in ("resources", "constraints"):
        assert ids(cib, scope) == {e.get("id") for e in rendered.find(scope)}
    result = subprocess.run(["crm_verify", "-x", str(cib)], capture_output=True, text=True)
    assert "error" not in (result.stdout + result.stderr).lower(), result.stderr
    assert pushed is not None


def test_the_scripts_carry_the_tool_and_stage_as_quoted_values(topo):
    script = CURRENT.cluster_ready(topo).create
    assert "CIB_TOOL='" in script and "STAGE='<stage>" in script
    assert 'python3 -c "$CIB_TOOL" apply "$STAGE"' in script


def test_remove_refuses_while_another_steps_constraints_name_its_resources(cib, topo):
    """A file system left in the CIB by an interrupted run still orders itself after the
    volume group: removing the VG step names it and changes nothing."""
    vg_clone = pacemaker.clone_id(pacemaker.lvm_id(topo.volume_groups[0]))
    fs_clone = pacemaker.clone_id(pacemaker.fs_id(topo.filesystems[0]))
    tool(cib, "apply", cluster_stage(topo))
    tool(cib, "apply", stage(topo, [vg_clone]))
    tool(cib, "apply", stage(topo, [fs_clone]))
    before = cib.read_text()
    refused = subprocess.run(
        [sys.executable, "-c", cib_tool(), "remove", stage(topo, [vg_clone])],
        env=dict(os.environ, CIB_file=str(cib)), capture_output=True, text=True,
    )
    assert refused.returncode != 0
    assert fs_clone in refused.stderr and "Nothing was changed" in refused.stderr
    assert cib.read_text() == before
