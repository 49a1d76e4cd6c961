"""The stack spec: example stacks load, and every bad input names its key path."""

from __future__ import annotations

import copy
import ipaddress
import json

import pytest

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


def set_path(cfg, path, value):
    """Sets a dotted path with [i] indexes in a config dict; value DELETE removes it."""
    keys = []
    for part in path.split("."):
        name, *idx = part.replace("]", "").split("[")
        keys.append(name)
        keys += [int(i) for i in idx]
    node = cfg
    for k in keys[:-1]:
        node = node.setdefault(k, {}) if isinstance(node, dict) else node[k]
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value


DELETE = object()

# (stack factory, key path to change, new value, key path the error must name, words it must say)
BAD = [
    # field types and formats
    (local, "tenant", "Local", "tenant", "pattern"),
    (local, "tenant", "a-very-long-tenant", "tenant", "12"),
    (local, "environment", "dev-1", "environment", "pattern"),
    (local, "generation", "rhel5", "generation", "legacy"),
    (local, "hypervisors[0].uri", "http://host/", "hypervisors[0].uri", "libvirt URI"),
    (local, "hypervisors[0].domainType", "lxc", "hypervisors[0].domainType", "qemu"),
    (local, "network.vlanId", 4095, "network.vlanId", "4094"),
    (local, "network.cidr", "10.77.10.0/33", "network.cidr", "IPv4"),
    (local, "members.vcpu", 0, "members.vcpu", "greater"),
    (local, "members.memoryMib", 128, "members.memoryMib", "256"),
    (local, "members.cpuShares", 1, "members.cpuShares", "2"),
    (local, "members.bogus", 1, "members.bogus", "allowed here"),
    (local, "storage.exports[0].protocol", "aoe", "storage.exports[0].protocol", "iscsi"),
    (local, "storage.volumeGroups[0].logicalVolumes[0].filesystem.fsName", "a.b", "storage.volumeGroups[0].logicalVolumes[0].filesystem.fsName", "pattern"),
    (local, "storage.volumeGroups[0].logicalVolumes[0].filesystem.fsName", "f" * 31, "storage.volumeGroups[0].logicalVolumes[0].filesystem.fsName", "30"),
    (local, "storage.volumeGroups[0].logicalVolumes[0].filesystem.mountPoint", "srv", "storage.volumeGroups[0].logicalVolumes[0].filesystem.mountPoint", "pattern"),
    (local, "storage.volumeGroups[0].logicalVolumes[0].size", "10 GB", "storage.volumeGroups[0].logicalVolumes[0].size", "pattern"),
    (local, "fencing.method", "fence_ipmilan", "fencing.method", "fence_xvm"),
    (local, "fencing.port", 80, "fencing.port", "1024"),
    (local, "selinux", "on", "selinux", "enforcing"),
    (local, "management", "cockpit", "management", "pcsd"),
    (local, "storage.volumeGroups[0].exports", [], "storage.volumeGroups[0].exports", "at least 1"),
    (local, "members", DELETE, "members", "required"),
    # cross-field rules
    (local, "storage.exports[0].protocol", "gnbd", "storage.exports[0].protocol", "legacy"),
    (legacy, "storage.exports[0].protocol", "nbd", "storage.exports[0].protocol", "current"),
    (local, "management", "luci", "management", "legacy"),
    (legacy, "management", "pcsd", "management", "current"),
    (local, "generation", "legacy", "image.osFamily", "centos5"),
    (legacy, "cluster.name", "acme-production-1", "cluster.name", "15"),
    (local, "storage.volumeGroups[0].logicalVolumes[0].filesystem.lockTable", "other:shared", "storage.volumeGroups[0].logicalVolumes[0].filesystem.lockTable", "local-dev:shared"),
    (local, "storage.volumeGroups[0].logicalVolumes[0].filesystem.journals", 2, "storage.volumeGroups[0].logicalVolumes[0].filesystem.journals", "one per member"),
    (local, "members.count", 2, None, None),  # placeholder replaced below
    (local, "fencing", {"method": "none"}, "fencing.method", "labWithoutFencing"),
    (local, "fencing.labWithoutFencing", True, "fencing.labWithoutFencing", "remove one"),
    (local, "fencing.multicastAddress", "10.0.0.1", "fencing.multicastAddress", "multicast"),
    (current_remote, "fencing.method", "fence_virsh", "fencing.method", "fence_xvm"),
    (local, "members.addresses", ["10.77.10.21", "10.77.10.22", "10.78.0.1"], "members.addresses[2]", "outside"),
    (local, "members.addresses", ["10.77.10.21", "10.77.10.22", "10.77.10.21"], "members.addresses[0]", "twice"),
    (local, "members.addresses", ["10.77.10.21", "10.77.10.22", "10.77.10.255"], "members.addresses[2]", "broadcast"),
    (local, "members.addresses", ["10.77.10.21", "10.77.10.22"], "members.addresses", "2 addresses for 3"),
    (local, "members.addresses", ["10.77.10.21", "10.77.10.22", "10.77.10.11"], "members.addresses[2]", "twice"),
    (local, "network.hostAddress", "10.77.10.21", "network.hostAddress", "twice"),
    (local, "members.count", 1, "members", "at least 2"),
    (local, "members.names", ["a", "b"], "members.count", "give one"),
    (local, "members.cpuCapPercent", 150, "members.cpuCapPercent", "1 vCPU"),
    (local, "storage.exports[0].server", "s9", "storage.exports[0].server", "no storage server"),
    (local, "storage.exports[0].sizeGib", DELETE, "storage.exports[0].sizeGib", "guest"),
    (local, "storage.volumeGroups[0].exports", ["nope"], "storage.volumeGroups[0].exports[0]", "no export"),
    (local, "hypervisors[0].domainType", "xen", "hypervisors[0].uri", "xen://"),
    (local, "members.hypervisor", "elsewhere", "members.hypervisor", "no hypervisor"),
    (current_remote, "hypervisors[0].trunk", DELETE, "hypervisors[0].trunk", "VLAN"),
    (current_remote, "hypervisors[0].trunk", "enp0s31f6long", "hypervisors[0].trunk", "15"),
    (local, "selinux", "enforcing", "selinux", "no SELinux"),
    (local, "storage.volumeGroups[0].logicalVolumes[0].filesystem.selinuxContext", "system_u:object_r:public_content_t:s0", "storage.volumeGroups[0].logicalVolumes[0].filesystem.selinuxContext", "disabled"),
    (local, "image.source", "images/x.qcow2", "image.source", "absolute"),
    (local, "image.boot", "bootloader", "image.boot", "builtin"),
    (local, "network.mode", "ovs", "network.bridge", "Open vSwitch"),
    (local, "fencing.keyFile", DELETE, "fencing.keyFile", "missing"),
    (local, "ssh.publicKeyFile", DELETE, "ssh.publicKey", "exactly one"),
    (current_remote, "cluster.twoNode", True, "cluster.twoNode", "exactly 2"),
    (local, "fencing.port", 1229, None, None),  # isolated network: the default port is allowed
    (legacy, "fencing.method", "fence_virsh", "fencing.method", "RHEL/CentOS 5"),
    (legacy, "storage.servers[0].kind", "external", "storage.exports[0].server", "cluster node"),
    (local, "network.hostAddress", "10.77.10.5", "network.hostAddress", "libvirt"),
    (local, "hypervisors[0].uri", "qemu+ssh://root@kvm1/system", "hypervisors[0].uri", "builtin image"),
    (legacy, "members.cpuShares", 70000, "members.cpuShares", "65535"),
]
BAD = [b for b in BAD if b[3] is not None]


@pytest.mark.parametrize("factory,path,value,error_path,words", BAD, ids=[f"{b[1]}={b[2]!r}"[:60] for b in BAD])
def test_bad_input_names_its_key(factory, path, value, error_path, words):
    cfg = factory()
    set_path(cfg, path, value)
    secrets = frozenset() if factory is local else SECRETS
    err = errors(cfg, secrets)
    matching = [i for i in err.issues if i.path == error_path]
    assert matching, f"no issue at {error_path}: {err}"
    assert any(words in i.message for i in matching), f"{error_path}: {matching}"


def test_at_least_thirty_distinct_bad_inputs():
    assert len({(b[1], repr(b[2])) for b in BAD}) >= 30


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
