"""The pacemaker CIB: fencing, locking, LVM and GFS2 resources, the constraints that order
them, and what pacemaker's own tools say about it."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from conftest import example_stacks, require_tool, stack_config
from render.pacemaker import cib_configuration, full_cib, xml_id
from spec import SpecError, build, load_spec
from spec.vocabulary import SECRET_KEY_NAMES

SECRETS = SECRET_KEY_NAMES
CURRENT_STACKS = [s for s in example_stacks() if stack_config(s).get("generation") == "current"]
VARIANTS = ["two-members", "no-fencing"]
NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def topology(config: dict, stack: str = "local"):
    return build(load_spec(config, frozenset() if stack == "local" else SECRETS))


def local_config() -> dict:
    return copy.deepcopy(stack_config("local"))


def variant_config(variant: str) -> dict:
    config = local_config()
    if variant == "two-members":
        config["members"]["count"] = 2
    elif variant == "no-fencing":
        config["fencing"] = {"method": "none", "labWithoutFencing": True}
    return config


def case_topology(case: str):
    if case in VARIANTS:
        return topology(variant_config(case))
    return topology(stack_config(case), case)


def cib(case: str) -> etree._Element:
    return etree.fromstring(full_cib(case_topology(case)))


def params(primitive: etree._Element) -> dict[str, str]:
    return {nv.get("name"): nv.get("value") for nv in primitive.findall("instance_attributes/nvpair")}


def primitive(doc: etree._Element, rsc_id: str) -> etree._Element:
    found = doc.findall(f".//primitive[@id='{rsc_id}']")
    assert len(found) == 1, f"{rsc_id}: {len(found)} primitives"
    return found[0]


def fence_devices(doc: etree._Element) -> list[etree._Element]:
    return doc.findall(".//primitive[@class='stonith']")


def properties(doc: etree._Element) -> dict[str, str]:
    return {nv.get("name"): nv.get("value") for nv in doc.findall("configuration/crm_config/cluster_property_set/nvpair")}


def monitor(primitive_el: etree._Element) -> etree._Element:
    return primitive_el.find("operations/op[@name='monitor']")


# --- cluster options and nodes -------------------------------------------------------


@pytest.mark.parametrize("stack", CURRENT_STACKS)
def test_cluster_freezes_without_quorum_and_carries_the_cluster_name(stack):
    topo = case_topology(stack)
    props = properties(etree.fromstring(full_cib(topo)))
    assert props == {"stonith-enabled": "true", "no-quorum-policy": "freeze", "cluster-name": topo.cluster_name}


@pytest.mark.parametrize("stack", CURRENT_STACKS)
def test_nodes_are_the_members_with_their_corosync_nodeids(stack):
    topo = case_topology(stack)
    nodes = etree.fromstring(full_cib(topo)).findall("configuration/nodes/node")
    assert [(n.get("id"), n.get("uname")) for n in nodes] == [(str(m.nodeid), m.name) for m in topo.members]


def test_full_cib_has_an_empty_status():
    doc = cib("local")
    assert [child.tag for child in doc] == ["configuration", "status"]
    assert len(doc.find("status")) == 0


def test_configuration_section_is_what_full_cib_holds():
    topo = case_topology("globex-prod")
    whole = etree.fromstring(full_cib(topo), etree.XMLParser(remove_blank_text=True))
    assert etree.tostring(cib_configuration(topo)) == etree.tostring(whole.find("configuration"))


# --- fencing -------------------------------------------------------------------------


@pytest.mark.parametrize("stack", CURRENT_STACKS)
def test_each_member_has_one_fence_xvm_device_that_targets_its_domain(stack):
    topo = case_topology(stack)
    devices = fence_devices(etree.fromstring(full_cib(topo)))
    assert len(devices) == len(topo.members)
    for member, device in zip(topo.members, devices):
        assert device.get("type") == "fence_xvm"
        assert params(device) == {
            "key_file": topo.fencing.member_key_path,
            "multicast_address": str(topo.fencing.multicast_address),
            "ipport": str(topo.fencing.port),
            "pcmk_host_list": member.name,
            "pcmk_host_map": f"{member.name}:{member.domain}",
        }


@pytest.mark.parametrize("stack", CURRENT_STACKS)
def test_a_fence_device_never_runs_on_the_member_it_fences(stack):
    topo = case_topology(stack)
    doc = etree.fromstring(full_cib(topo))
    bans = {(c.get("rsc"), c.get("node")) for c in doc.findall(".//rsc_location") if c.get("score") == "-INFINITY"}
    for device in fence_devices(doc):
        assert (device.get("id"), params(device)["pcmk_host_list"]) in bans


def test_two_members_delay_fencing_of_the_first_so_one_survives_a_fence_race():
    topo = case_topology("two-members")
    first, second = fence_devices(etree.fromstring(full_cib(topo)))
    assert params(first)["pcmk_host_list"] == topo.members[0].name
    assert params(first)["pcmk_delay_base"] == "5s"
    assert "pcmk_delay_base" not in params(second)


def test_more_members_fence_without_delay():
    assert all("pcmk_delay_base" not in params(d) for d in fence_devices(cib("local")))


def test_without_fencing_there_is_no_fence_device_and_stonith_is_off():
    doc = cib("no-fencing")
    assert fence_devices(doc) == []
    assert doc.findall(".//rsc_location") == []
    assert properties(doc)["stonith-enabled"] == "false"


def test_without_fencing_the_dlm_is_allowed_to_start_and_failures_do_not_ask_for_fencing():
    doc = cib("no-fencing")
    assert params(primitive(doc, "dlm")) == {"allow_stonith_disabled": "true"}
    assert doc.findall(".//op[@on-fail='fence']") == []


# --- locking, LVM, GFS2 --------------------------------------------------------------


@pytest.mark.parametrize("stack", CURRENT_STACKS)
def test_locking_is_an_interleaved_clone_of_dlm_then_lvmlockd(stack):
    clone = cib(stack).find("configuration/resources/clone[@id='locking-clone']")
    group = clone.find("group[@id='locking']")
    assert [(p.get("id"), p.get("provider"), p.get("type")) for p in group.findall("primitive")] == [
        ("dlm", "pacemaker", "controld"),
        ("lvmlockd", "heartbeat", "lvmlockd"),
    ]
    assert clone.find("meta_attributes/nvpair[@name='interleave']").get("value") == "true"


def test_controld_resource_id_makes_the_agent_start_dlm_controld():
    # The agent picks its daemon from the resource ID: gfs_controld if it contains "gfs".
    dlm_id = cib("local").find(".//primitive[@type='controld']").get("id")
    assert "dlm" in dlm_id.lower() and "gfs" not in dlm_id.lower()


@pytest.mark.parametrize("stack", CURRENT_STACKS)
def test_locking_and_mount_failures_fence_the_member(stack):
    doc = cib(stack)
    for p in doc.findall(".//primitive"):
        if p.get("type") in ("controld", "lvmlockd", "Filesystem"):
            assert monitor(p).get("on-fail") == "fence", p.get("id")


@pytest.mark.parametrize("stack", CURRENT_STACKS)
def test_each_volume_group_is_activated_shared_through_lvmlockd_in_an_interleaved_clone(stack):
    topo = case_topology(stack)
    doc = etree.fromstring(full_cib(topo))
    for vg in topo.volume_groups:
        clone = doc.find(f"configuration/resources/clone[@id='lvm-{vg.name}-clone']")
        lvm = clone.find("primitive")
        assert (lvm.get("provider"), lvm.get("type")) == ("heartbeat", "LVM-activate")
        assert params(lvm) == {"vgname": vg.name, "vg_access_mode": "lvmlockd", "activation_mode": "shared"}
        assert clone.find("meta_attributes/nvpair[@name='interleave']").get("value") == "true"


@pytest.mark.parametrize("stack", CURRENT_STACKS)
def test_each_gfs2_file_system_is_mounted_from_its_volume_in_an_interleaved_clone(stack):
    topo = case_topology(stack)
    doc = etree.fromstring(full_cib(topo))
    for fs in topo.filesystems:
        clone = doc.find(f"configuration/resources/clone[@id='fs-{fs.fs_name}-clone']")
        mount = clone.find("primitive")
        assert (mount.get("provider"), mount.get("type")) == ("heartbeat", "Filesystem")
        assert params(mount) == {
            "device": f"/dev/{fs.vg}/{fs.lv}",
            "directory": fs.mount_point,
            "fstype": "gfs2",
            "options": ",".join(fs.mount_options),
        }
        assert clone.find("meta_attributes/nvpair[@name='interleave']").get("value") == "true"


def test_selinux_context_reaches_the_mount_options():
    options = params(primitive(cib("globex-prod"), "fs-home"))["options"]
    assert options == 'noatime,context="system_u:object_r:user_home_dir_t:s0"'


@pytest.mark.parametrize("stack", CURRENT_STACKS)
def test_start_order_is_locking_then_volume_group_then_file_system(stack):
    topo = case_topology(stack)
    doc = etree.fromstring(full_cib(topo))
    expected = {("locking-clone", f"lvm-{vg.name}-clone") for vg in topo.volume_groups}
    expected |= {(f"lvm-{fs.vg}-clone", f"fs-{fs.fs_name}-clone") for fs in topo.filesystems}
    orders = doc.findall(".//rsc_order")
    assert {(o.get("first"), o.get("then")) for o in orders} == expected
    assert all(o.get("kind") == "Mandatory" and o.get("first-action") == o.get("then-action") == "start" for o in orders)
    colocations = doc.findall(".//rsc_colocation")
    assert {(c.get("with-rsc"), c.get("rsc")) for c in colocations} == expected
    assert all(c.get("score") == "INFINITY" for c in colocations)


# --- IDs -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CURRENT_STACKS + VARIANTS)
def test_every_id_is_a_unique_valid_xml_id(case):
    ids = [e.get("id") for e in cib(case).iter() if e.get("id") is not None and e.tag != "node"]
    assert len(ids) == len(set(ids))
    assert [i for i in ids if not NCNAME.match(i)] == []


def test_names_that_are_not_xml_ids_are_sanitized():
    assert xml_id("lvm", "vg+data") == "lvm-vg_data"
    assert xml_id("7vg") == "_7vg"


def two_volume_groups(first: str, second: str) -> dict:
    config = local_config()
    storage = config["storage"]
    storage["exports"].append({"name": "data2", "protocol": "nbd", "server": "s1", "sizeGib": 1, "port": 10810})
    storage["volumeGroups"] = [
        {"name": first, "exports": ["data"], "logicalVolumes": [{"name": "lv"}]},
        {"name": second, "exports": ["data2"], "logicalVolumes": [{"name": "lv"}]},
    ]
    return config


def test_volume_groups_whose_sanitized_names_collide_are_refused_by_the_spec():
    with pytest.raises(SpecError, match="storage.volumeGroups.1..name: 'vg_a' gives the pacemaker ID lvm-vg_a"):
        topology(two_volume_groups("vg+a", "vg_a"))


def test_a_volume_group_named_like_the_locking_group_does_not_collide():
    ids = [e.get("id") for e in etree.fromstring(full_cib(topology(two_volume_groups("locking", "dlm")))).iter()]
    assert {"lvm-locking-clone", "lvm-dlm", "locking-clone", "dlm"} <= set(ids)


def test_rendering_twice_gives_the_same_text():
    assert full_cib(case_topology("globex-prod")) == full_cib(case_topology("globex-prod"))


@pytest.mark.parametrize("stack", CURRENT_STACKS)
def test_cib_matches_golden(stack, golden):
    golden(f"pacemaker/{stack}.xml", full_cib(case_topology(stack)))


# --- pacemaker's own tools -----------------------------------------------------------

# crm_verify -VV on a CIB without status: messages it prints because nothing about the
# running cluster is known yet. Any other message fails the test.
OFFLINE_WARNINGS = {
    # No status section, so no quorum has been recorded.
    r"Fencing and resource management disabled due to lack of quorum",
    # Members that never joined count as unclean until fenced (startup-fencing).
    r"Node [a-z0-9-]+ is unclean but cannot be fenced",
}
# Only with fencing method none: the cluster trusts that members it never saw are down.
WITHOUT_FENCING_WARNINGS = {r"Blind faith: not fencing unseen nodes"}
WARNINGS_SUMMARY = "crm_verify: Warnings found during check: config may not be valid"
MESSAGE = re.compile(r"^\(\w+\)\s+(?:warning|error|notice): (.*)$")


def unexpected_messages(output: str, accepted: set[str]) -> list[str]:
    out = []
    for line in output.splitlines():
        if not line.strip() or line == WARNINGS_SUMMARY:
            continue
        message = MESSAGE.match(line)
        if message and "warning:" in line and any(re.fullmatch(a, message.group(1)) for a in accepted):
            continue
        out.append(line)
    return out


def crm_verify(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [require_tool("crm_verify"), "-VV", "-x", str(path)], capture_output=True, text=True, timeout=60
    )


def accepted_without_status(case: str) -> set[str]:
    return OFFLINE_WARNINGS | (WITHOUT_FENCING_WARNINGS if case == "no-fencing" else set())


@pytest.mark.parametrize("case", CURRENT_STACKS + VARIANTS)
def test_crm_verify_finds_only_the_warnings_of_a_cluster_not_yet_started(case, tmp_path):
    path = tmp_path / "cib.xml"
    path.write_text(full_cib(case_topology(case)))
    result = crm_verify(path)
    output = result.stdout + result.stderr
    assert result.returncode in (0, 78), output
    assert unexpected_messages(output, accepted_without_status(case)) == []


def simulate_all_members_online(case: str, tmp_path: Path) -> tuple[Path, object]:
    """The CIB after pacemaker's scheduler ran with every member online and quorate."""
    topo = case_topology(case)
    before, after = tmp_path / "cib.xml", tmp_path / "simulated.xml"
    before.write_text(full_cib(topo))
    node_up = [arg for m in topo.members for arg in ("--node-up", m.name)]
    result = subprocess.run(
        [require_tool("crm_simulate"), "-x", str(before), "--quorum", "1", *node_up, "--simulate", "-O", str(after)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return after, topo


def started_on(cib_with_status: etree._Element) -> dict[str, set[str]]:
    """Resource IDs whose last operation on a node was a successful start, by node."""
    started: dict[str, set[str]] = {}
    for node in cib_with_status.findall("status/node_state"):
        started[node.get("uname")] = {
            rsc.get("id")
            for rsc in node.findall("lrm/lrm_resources/lrm_resource")
            if any(
                op.get("id") == f"{rsc.get('id')}_last_0" and op.get("operation") == "start" and op.get("rc-code") == "0"
                for op in rsc.findall("lrm_rsc_op")
            )
        }
    return started


@pytest.mark.parametrize("case", CURRENT_STACKS + VARIANTS)
def test_scheduler_starts_every_clone_on_every_member_once_all_are_online(case, tmp_path):
    after, topo = simulate_all_members_online(case, tmp_path)
    clones = {"dlm", "lvmlockd"} | {f"lvm-{vg.name}" for vg in topo.volume_groups}
    clones |= {f"fs-{fs.fs_name}" for fs in topo.filesystems}
    started = started_on(etree.parse(str(after)).getroot())
    assert set(started) == {m.name for m in topo.members}
    for member in topo.members:
        assert clones <= started[member.name], member.name


@pytest.mark.parametrize("case", CURRENT_STACKS + ["two-members"])
def test_scheduler_places_each_fence_device_on_another_member(case, tmp_path):
    after, topo = simulate_all_members_online(case, tmp_path)
    started = started_on(etree.parse(str(after)).getroot())
    for member in topo.members:
        runs_on = [node for node, ids in started.items() if f"fence-{member.name}" in ids]
        assert len(runs_on) == 1 and runs_on[0] != member.name, (member.name, runs_on)


@pytest.mark.parametrize("case", CURRENT_STACKS + VARIANTS)
def test_crm_verify_is_silent_about_the_running_cluster(case, tmp_path):
    # With every member online the scheduler also checks each operation (e.g. it rejects
    # on-fail=fence when fencing is off), which it skips while nothing runs.
    after, _ = simulate_all_members_online(case, tmp_path)
    result = crm_verify(after)
    output = result.stdout + result.stderr
    accepted = WITHOUT_FENCING_WARNINGS if case == "no-fencing" else set()
    assert unexpected_messages(output, accepted) == []
    assert "Errors found" not in output


# --- the agents' metadata ------------------------------------------------------------


def agent_metadata(primitive_el: etree._Element) -> etree._Element:
    spec = ":".join(p for p in (primitive_el.get("class"), primitive_el.get("provider"), primitive_el.get("type")) if p)
    result = subprocess.run(
        [require_tool("crm_resource"), "--show-metadata", spec], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"{spec}: {result.stderr}"
    return etree.fromstring(result.stdout.encode())


def fencer_parameters() -> set[str]:
    """The pcmk_* parameters pacemaker's fencer itself takes on every fence device."""
    candidates = [Path("/usr/lib/pacemaker/pacemaker-fenced"), Path("/usr/libexec/pacemaker/pacemaker-fenced")]
    fenced = next((p for p in candidates if p.exists()), None)
    if fenced is None:
        pytest.fail("pacemaker-fenced is not installed: run make setup")
    out = subprocess.run([str(fenced), "metadata"], capture_output=True, text=True, check=True, timeout=60).stdout
    return {p.get("name") for p in etree.fromstring(out.encode()).iter("parameter")}


def seconds(duration: str) -> int:
    number, unit = re.fullmatch(r"(\d+)\s*(s|sec|m|min|)", duration).groups()
    return int(number) * (60 if unit in ("m", "min") else 1)


METADATA_CASES = CURRENT_STACKS + ["two-members", "no-fencing"]


@pytest.mark.parametrize("case", METADATA_CASES)
def test_every_parameter_is_one_the_agent_declares(case):
    fencer = fencer_parameters()
    for p in cib(case).iter("primitive"):
        declared = {d.get("name") for d in agent_metadata(p).iter("parameter")}
        if p.get("class") == "stonith":
            declared |= fencer
        assert set(params(p)) - declared == set(), p.get("id")


@pytest.mark.parametrize("case", METADATA_CASES)
def test_operation_timeouts_are_at_least_what_the_agent_advises(case):
    for p in cib(case).iter("primitive"):
        if p.get("class") == "stonith":
            continue
        advised: dict[str, int] = {}
        for action in agent_metadata(p).iter("action"):
            if action.get("timeout"):
                advised[action.get("name")] = max(advised.get(action.get("name"), 0), seconds(action.get("timeout")))
        for op in p.findall("operations/op"):
            assert seconds(op.get("timeout")) >= advised[op.get("name")], (p.get("id"), op.get("name"))
