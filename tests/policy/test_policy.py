"""The policy pack's rules on every example stack, and a stack that breaks each rule."""

from __future__ import annotations

import copy
import re
import shlex

import pytest

from conftest import ROOT, SECRETS, SSH_KEY, example_stacks, platform_outputs, program, stack_config
from policy.rules import RULES, UNKNOWN, PackConfig, Resource, Tenant, pack_config
from render.script import values_of
from components.access import as_command

pytestmark = pytest.mark.usefixtures("local_key_files")

# What platform/ publishes for the example tenants, plus the local lab on this machine.
REGISTRY = PackConfig(
    (
        Tenant("localhost", "local-dev", 10, 20010),
        *pack_config(
            {"tenants-do-not-share-vlans-or-fence-ports": {"registry": platform_outputs()["organization/gfs2-platform/shared"]["registry"]}}
        ).registry,
    )
)


_captured: dict[str, list[Resource]] = {}


def resources(stack, config=None):
    """The stack's resources as the pack sees them (example stacks captured once)."""
    if config is not None:
        return [Resource(r.type, r.name, r.inputs) for r in program(stack, config).resources()]
    if stack not in _captured:
        _captured[stack] = resources(stack, stack_config(stack))
    return _captured[stack]


def violations(res, config=REGISTRY):
    return {name: rule(res, config) for name, (rule, _) in RULES.items()}


def replace_value(res, step, key, new):
    """A copy of the resources with one rendered value of one node script changed."""
    out = []
    for r in res:
        create = r.props.get("create")
        if isinstance(create, str) and values_of(create).get("STEP") == step:
            old = values_of(create)[key]
            text = shlex.split(create)[2] if create.startswith("bash -c ") else create
            text = text.replace(f"{key}={shlex.quote(old)}", f"{key}={shlex.quote(new)}", 1)
            r = Resource(r.type, r.name, {**r.props, "create": as_command(text) if create.startswith("bash -c ") else text})
        out.append(r)
    return out


@pytest.mark.parametrize("stack", example_stacks())
def test_example_stacks_pass_every_rule(stack):
    found = violations(resources(stack))
    assert found == {name: [] for name in RULES}


def test_a_member_without_stonith_is_refused():
    res = resources("local")
    broken = [
        Resource(r.type, r.name, {**r.props, "create": re.sub(r"pcmk_host_list\" value=\"m3\"", 'pcmk_host_list" value="mX"', r.props["create"])})
        if r.name.endswith("membership-m3-fence-device")
        else r
        for r in res
    ]
    assert violations(broken)["every-member-is-fenced"] == ["member m3 has no stonith device"]


def test_a_legacy_node_without_fence_device_is_refused():
    res = resources("acme-prod")
    broken = [
        Resource(r.type, r.name, {**r.props, "create": r.props["create"].replace('<device name="xvm" domain="g2-acme-prod-web2"', '<x name="xvm" domain="g2-acme-prod-web2"')})
        if "membership-" in r.name and "create" in r.props
        else r
        for r in res
    ]
    assert "cluster node web2 has no fence device in cluster.conf" in violations(broken)["every-member-is-fenced"]


def test_too_few_journals_are_refused():
    broken = replace_value(resources("local"), "mkfs-shared", "JOURNALS", "2")
    assert violations(broken)["journals-cover-members"] == ["local-dev:shared: 2 journals for 3 members"]


def test_a_cached_shared_disk_is_refused():
    res = resources("local")
    broken = [
        Resource(r.type, r.name, {**r.props, "xml": {"xslt": r.props["xml"]["xslt"].replace('cache="none"', 'cache="writeback"')}})
        if r.type == "libvirt:index/domain:Domain"
        else r
        for r in res
    ]
    assert violations(broken)["shared-disks-raw-uncached"] == ["g2-local-dev-s1: its data disks are not given cache='none'"]


def test_a_qcow2_shared_disk_is_refused():
    res = resources("local")
    broken = [
        Resource(r.type, r.name, {**r.props, "format": "qcow2"}) if str(r.props.get("name", "")).endswith(".raw") else r
        for r in res
    ]
    assert violations(broken)["shared-disks-raw-uncached"] == ["g2-local-dev-s1-data.raw: a shared disk must be raw, not qcow2"]


def test_a_secret_in_command_text_is_refused():
    res = resources("globex-prod")
    broken = [
        Resource(r.type, r.name, {**r.props, "create": r.props["create"] + f" # {SSH_KEY}"}) if r.name.endswith("-status") else r
        for r in res
    ]
    assert violations(broken)["no-secret-in-command-text"] == ["globex-prod-status: its create text holds a private key"]


def test_stdin_repeated_in_command_text_is_refused():
    res = resources("globex-prod")
    key = SECRETS["fenceKey"]
    broken = [
        Resource(r.type, r.name, {**r.props, "create": r.props["create"] + f" echo {key}"}) if r.name.endswith("-key-m1") else r
        for r in res
    ]
    assert violations(broken)["no-secret-in-command-text"] == ["globex-prod-fencing-key-m1: its create text repeats what it sends on stdin"]


def test_a_remote_stack_without_vlan_is_refused():
    config = copy.deepcopy(stack_config("local"))
    config["hypervisors"][0]["uri"] = "qemu+ssh://root@kvm2.example.net/system"
    config["image"] = {"source": "/images/debian.qcow2", "kernel": "/boot/vmlinux", "initrd": "/boot/initrd"}
    found = violations(resources("local", config))["remote-stacks-name-a-vlan"]
    assert found == ["g2-local-dev: an isolated network on a shared hypervisor", "the stack runs on a remote hypervisor but names no VLAN"]


def test_a_tenant_reusing_another_tenants_vlan_or_port_is_refused():
    registry = PackConfig((*REGISTRY.registry, Tenant("kvm1.example.net", "initech-prod", 230, 20230)))
    found = violations(resources("globex-prod"), registry)["tenants-do-not-share-vlans-or-fence-ports"]
    assert found == [
        "VLAN 230 on kvm1.example.net also belongs to initech-prod",
        "fence port 20230 on kvm1.example.net also belongs to initech-prod",
    ]


def test_an_unregistered_tenant_is_refused():
    found = violations(resources("globex-prod"), PackConfig(()))["tenants-do-not-share-vlans-or-fence-ports"]
    assert found == ["globex-prod is not in the platform's registry of tenants on kvm1.example.net"]


def test_a_lab_on_this_machine_needs_no_registry():
    """The local stack has no platform; CI previews it with an empty registry."""
    assert violations(resources("local"), PackConfig(()))["tenants-do-not-share-vlans-or-fence-ports"] == []


def test_a_lab_on_this_machine_is_still_checked_against_a_registry():
    registry = PackConfig((Tenant("localhost", "other-dev", 10, 20010),))
    found = violations(resources("local"), registry)["tenants-do-not-share-vlans-or-fence-ports"]
    assert "VLAN 10 on localhost also belongs to other-dev" in found


def test_pack_config_reads_the_registry():
    raw = {"tenants-do-not-share-vlans-or-fence-ports": {"registry": [
        {"hypervisor": "h", "stackId": "a-b", "vlanId": 5, "fencePort": 20005}
    ]}}
    assert pack_config(raw) == PackConfig((Tenant("h", "a-b", 5, 20005),))


class _Args:
    def __init__(self, res, config):
        self.resources = [_PolicyResource(r) for r in res]
        self._config = config

    def get_config(self):
        return self._config


class _PolicyResource:
    def __init__(self, r):
        from pulumi_policy.secret import Secret

        def as_policy_sees_it(v):
            if isinstance(v, dict) and v.get("4dabf18193072939515e22adb298388d"):
                return Secret(as_policy_sees_it(v["value"]))
            if isinstance(v, dict):
                return {k: as_policy_sees_it(x) for k, x in v.items()}
            if isinstance(v, list):
                return [as_policy_sees_it(x) for x in v]
            return v

        self.resource_type, self.name, self.props = r.type, r.name, as_policy_sees_it(r.props)


def test_the_pack_wires_every_rule_as_a_mandatory_stack_policy(monkeypatch):
    import runpy

    import pulumi_policy

    packs = []
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: packs.append(kwargs))
    runpy.run_path(str(ROOT / "policy" / "__main__.py"))
    (pack,) = packs
    policies = {p.name: p for p in pack["policies"]}
    assert set(policies) == set(RULES)
    assert all(p.enforcement_level == pulumi_policy.EnforcementLevel.MANDATORY for p in policies.values())

    registry = {"registry": [{"hypervisor": "kvm1.example.net", "stackId": "globex-prod", "vlanId": 230, "fencePort": 20230}]}
    reported = []
    res = resources("globex-prod")
    for name, p in policies.items():
        config = registry if name == "tenants-do-not-share-vlans-or-fence-ports" else {}
        p.validate(_Args(res, config), reported.append)
    assert reported == []
    broken = replace_value(res, "mkfs-home", "JOURNALS", "1")
    policies["journals-cover-members"].validate(_Args(broken, {}), reported.append)
    assert reported == ["globex-prod:home: 1 journals for 4 members"]


# --- a preview: the engine cannot know ids and outputs yet ----------------------------

# What the engine sends a policy pack for a value a preview cannot know (a string).
UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def as_in_preview(res, unknown):
    """The resources as a preview registers them: commands' stdout/stderr, the volume ids
    of the domains' disks and the network ids are not known yet."""
    out = []
    for r in res:
        props = dict(r.props)
        if r.type in ("command:remote:Command", "command:local:Command"):
            props.update(stdout=unknown, stderr=unknown)
        if r.type == "libvirt:index/domain:Domain":
            props["disks"] = [{**d, "volumeId": unknown} for d in props.get("disks", [])]
            props["networkInterfaces"] = [{**n, "networkId": unknown} for n in props.get("networkInterfaces", [])]
        out.append(Resource(r.type, r.name, props))
    return out


@pytest.mark.parametrize("stack", example_stacks())
def test_example_stacks_pass_every_rule_in_a_preview(stack):
    assert violations(as_in_preview(resources(stack), UNKNOWN)) == {name: [] for name in RULES}


def test_a_qcow2_shared_disk_is_refused_when_volume_ids_are_unknown():
    """In a preview the domain's disks name no volume yet: its data volumes are found by
    the component's resource names."""
    res = [
        Resource(r.type, r.name, {**r.props, "format": "qcow2"}) if str(r.props.get("name", "")).endswith(".raw") else r
        for r in resources("local")
    ]
    found = violations(as_in_preview(res, UNKNOWN))["shared-disks-raw-uncached"]
    assert found == ["g2-local-dev-s1-data.raw: a shared disk must be raw, not qcow2"]


def test_the_pack_maps_unknown_values_to_the_rules_sentinel(monkeypatch):
    import runpy

    import pulumi_policy
    from pulumi_policy.proxy import unknown_checking_proxy
    from pulumi_policy.secret import Secret

    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: None)
    plain = runpy.run_path(str(ROOT / "policy" / "__main__.py"))["_plain"]
    props = unknown_checking_proxy(
        {"create": "echo", "stdout": UNKNOWN_STRING, "disks": [{"volumeId": UNKNOWN_STRING}, {"volumeId": "v"}],
         "connection": Secret({"host": "m1"}), "vcpu": 2}
    )
    assert plain(props) == {
        "create": "echo",
        "stdout": UNKNOWN,
        "disks": [{"volumeId": UNKNOWN}, {"volumeId": "v"}],
        "connection": {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": {"host": "m1"}},
        "vcpu": 2,
    }


class _PreviewArgs(_Args):
    """What the engine gives a stack policy in a preview: props behind the pack's
    unknown-checking proxy, unknown values as the engine's sentinels."""

    def __init__(self, res, config):
        from pulumi_policy.proxy import unknown_checking_proxy

        super().__init__(res, config)
        for r in self.resources:
            r.props = unknown_checking_proxy(r.props)


def test_every_policy_runs_on_a_preview(monkeypatch):
    """Reading an unknown value through the proxy raises; the engine then skips the policy
    with "can't run policy ... during preview" and the preview passes. Every policy must
    run to its end on a preview's resources."""
    import runpy

    import pulumi_policy

    packs = []
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: packs.append(kwargs))
    runpy.run_path(str(ROOT / "policy" / "__main__.py"))
    policies = {p.name: p for p in packs[0]["policies"]}
    registry = {"registry": [{"hypervisor": "kvm1.example.net", "stackId": "globex-prod", "vlanId": 230, "fencePort": 20230}]}
    res = as_in_preview(resources("globex-prod"), UNKNOWN_STRING)
    reported = []
    for name, p in policies.items():
        config = registry if name == "tenants-do-not-share-vlans-or-fence-ports" else {}
        p.validate(_PreviewArgs(res, config), reported.append)
    assert reported == []
    broken = [
        Resource(r.type, r.name, {**r.props, "format": "qcow2"}) if str(r.props.get("name", "")).endswith(".raw") else r
        for r in res
    ]
    policies["shared-disks-raw-uncached"].validate(_PreviewArgs(broken, {}), reported.append)
    assert sorted(reported) == [
        "g2-globex-prod-iscsi1-lun1.raw: a shared disk must be raw, not qcow2",
        "g2-globex-prod-iscsi2-lun2.raw: a shared disk must be raw, not qcow2",
    ]
