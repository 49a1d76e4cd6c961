"""The stack spec: example stacks load, and every bad input names its key path."""

from __future__ import annotations

import copy
import ipaddress
import json

import pytest

from bad_cases import ALL, SPEC, assert_refused
from conftest import example_stacks, stack_config
from spec import SpecError, build, load_spec
from spec.load import parse_pulumi_config
from spec.vocabulary import SECRET_KEY_NAMES

SECRETS = SECRET_KEY_NAMES


def local():
    return copy.deepcopy(stack_config("local"))


def legacy():
    return copy.deepcopy(stack_config("acme-prod"))


def current_remote():
    return copy.deepcopy(stack_config("globex-prod"))


def errors(config, secrets=frozenset()):
    with pytest.raises(SpecError) as e:
        load_spec(config, secrets)
    return e.value


@pytest.mark.parametrize("stack", example_stacks())
def test_example_stacks_load(stack):
    secrets = frozenset() if stack == "local" else SECRETS
    topo = build(load_spec(stack_config(stack), secrets))
    assert topo.members and topo.exports and topo.filesystems


def test_local_stack_topology_defaults():
    topo = build(load_spec(local()))
    assert [m.name for m in topo.members] == ["m1", "m2", "m3"]
    assert [str(m.address) for m in topo.members] == ["10.77.10.21", "10.77.10.22", "10.77.10.23"]
    assert str(topo.host_address) == "10.77.10.1"
    assert str(topo.guest("s1").address) == "10.77.10.11"
    fs = topo.filesystems[0]
    assert fs.lock_table == "local-dev:shared"
    assert fs.journals == 4  # three members plus one spare
    assert fs.device == "/dev/vg_shared/lv_gfs2"
    assert topo.selinux == "disabled"  # the Debian image has no SELinux
    assert topo.two_node is False
    assert topo.fencing.port == 20010


def test_legacy_stack_selinux_context_becomes_a_mount_option():
    topo = build(load_spec(legacy(), SECRETS))
    assert topo.selinux == "enforcing"
    assert 'context="system_u:object_r:httpd_sys_content_t:s0"' in topo.filesystems[0].mount_options


def test_every_problem_is_reported_at_once():
    cfg = local()
    cfg["storage"]["exports"][0]["protocol"] = "gnbd"
    cfg["fencing"] = {"method": "none"}
    paths = errors(cfg).paths
    assert "storage.exports[0].protocol" in paths and "fencing.method" in paths


@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
def test_bad_input_names_its_key(case):
    assert_refused(case)


def test_at_least_thirty_distinct_bad_inputs():
    assert len({c.id for c in SPEC}) >= 30


def test_two_members_get_two_node_quorum_and_refuse_turning_it_off():
    cfg = local()
    cfg["members"]["count"] = 2
    assert build(load_spec(cfg)).two_node is True
    cfg["cluster"]["twoNode"] = False
    assert "cluster.twoNode" in errors(cfg).paths


def test_secret_given_twice_is_refused():
    cfg = local()
    err = errors(cfg, frozenset({"fenceKey"}))
    assert err.paths == ["fencing.keyFile"]


def test_unknown_top_level_key_is_named():
    cfg = local()
    cfg["member"] = {"count": 3}
    err = errors(cfg)
    assert err.paths == ["member"] and "unknown config key" in err.issues[0].message


def test_export_used_by_two_volume_groups_is_refused():
    cfg = current_remote()
    vgs = cfg["storage"]["volumeGroups"]
    vgs.append({"name": "vg_other", "exports": ["lun1"], "logicalVolumes": [{"name": "lv"}]})
    assert "storage.volumeGroups[1].exports[0]" in errors(cfg, SECRETS).paths


def test_only_the_last_logical_volume_may_take_the_free_space():
    cfg = current_remote()
    lvs = cfg["storage"]["volumeGroups"][0]["logicalVolumes"]
    lvs[0]["size"] = "50%FREE"
    assert "storage.volumeGroups[0].logicalVolumes[0].size" in errors(cfg, SECRETS).paths


def test_duplicate_mount_points_are_refused():
    cfg = current_remote()
    lvs = cfg["storage"]["volumeGroups"][0]["logicalVolumes"]
    lvs[1]["filesystem"]["mountPoint"] = lvs[0]["filesystem"]["mountPoint"]
    paths = errors(cfg, SECRETS).paths
    assert "storage.volumeGroups[0].logicalVolumes[1].filesystem.mountPoint" in paths


def test_spec_is_frozen():
    spec = load_spec(local())
    with pytest.raises(Exception):
        spec.tenant = "other"


def test_pulumi_config_strings_become_values_and_secret_names():
    raw = {
        "gfs2-cluster:tenant": "local",
        "gfs2-cluster:members": json.dumps({"count": 3}),
        "gfs2-cluster:protectData": "false",
        "gfs2-cluster:selinux": "",
        "gfs2-cluster:fenceKey": "c2VjcmV0",
        "gfs2-cluster:sshPrivateKey": "",
        "other:thing": "x",
    }
    config, secrets = parse_pulumi_config(raw, "gfs2-cluster", frozenset({"gfs2-cluster:fenceKey"}))
    assert config == {"tenant": "local", "members": {"count": 3}, "protectData": False}
    assert secrets == frozenset({"fenceKey"})


def test_a_secret_stored_in_plain_text_is_refused():
    raw = {"gfs2-cluster:fenceKey": "c2VjcmV0"}
    with pytest.raises(SpecError) as e:
        parse_pulumi_config(raw, "gfs2-cluster", frozenset())
    assert e.value.paths == ["fenceKey"] and "--secret" in str(e.value)


def test_two_tenants_never_share_derived_names():
    a = build(load_spec(local()))
    cfg = local()
    cfg["tenant"], cfg["network"]["vlanId"] = "other", 11
    b = build(load_spec(cfg))
    for attr in ("bridge",):
        assert getattr(a, attr) != getattr(b, attr)
    assert not {g.domain for g in a.guests} & {g.domain for g in b.guests}
    assert a.fencing.port != b.fencing.port
    assert a.fencing.multicast_address != b.fencing.multicast_address
    assert isinstance(a.fencing.multicast_address, ipaddress.IPv4Address)
