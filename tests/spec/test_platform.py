"""The platform stack: shared hypervisors, and the registry of tenants read from the
tenant stack files that name it."""

from __future__ import annotations

import copy

import pytest
from conftest import example_stacks, platform_config, stack_config
from spec import SpecError
from spec.platform import load_platform, registry, tenants

PLATFORM = "organization/gfs2-platform/shared"


def shared():
    return load_platform(platform_config())


def files(**extra):
    found = {f"stacks/Pulumi.{s}.yaml": stack_config(s) for s in example_stacks()}
    found.update({f"stacks/Pulumi.{k}.yaml": v for k, v in extra.items()})
    return found


def initech(vlan=240, port=None, uri="qemu+ssh://root@kvm1.example.net/system"):
    config = copy.deepcopy(stack_config("globex-prod"))
    config["tenant"] = "initech"
    config["network"]["vlanId"] = vlan
    config["hypervisors"][0]["uri"] = uri
    if port:
        config["fencing"] = {"method": "fence_xvm", "port": port}
    return config


def test_the_example_platform_registers_the_stacks_that_name_it():
    assert registry(tenants(shared(), PLATFORM, files())) == [
        {"hypervisor": "dom0.example.net", "stackId": "acme-prod", "vlanId": 120, "fencePort": 20120},
        {"hypervisor": "kvm1.example.net", "stackId": "globex-prod", "vlanId": 230, "fencePort": 20230},
    ]


def test_a_new_tenant_file_is_all_it_takes():
    found = tenants(shared(), PLATFORM, files(**{"initech-prod": initech()}))
    assert [t.stack_id for t in found] == ["acme-prod", "globex-prod", "initech-prod"]


def test_a_vlan_id_belongs_to_one_tenant_per_hypervisor():
    with pytest.raises(SpecError) as e:
        tenants(shared(), PLATFORM, files(**{"initech-prod": initech(vlan=230, port=21000)}))
    assert e.value.paths == ["stacks/Pulumi.initech-prod.yaml: vlanId"]
    assert "already belongs to globex-prod" in str(e.value)


def test_the_same_vlan_id_on_another_hypervisor_is_fine():
    config = initech(vlan=230, uri="xen+ssh://root@dom0.example.net/")
    config["hypervisors"][0]["domainType"] = "xen"
    found = tenants(shared(), PLATFORM, files(**{"initech-prod": config}))
    assert len(found) == 3


def test_a_fence_port_belongs_to_one_tenant_per_hypervisor():
    with pytest.raises(SpecError) as e:
        tenants(shared(), PLATFORM, files(**{"initech-prod": initech(vlan=241, port=20230)}))
    assert e.value.paths == ["stacks/Pulumi.initech-prod.yaml: fencing.port"]


def test_a_tenant_on_an_unknown_hypervisor_is_named():
    with pytest.raises(SpecError) as e:
        tenants(shared(), PLATFORM, files(**{"initech-prod": initech(uri="qemu+ssh://root@kvm9.example.net/system")}))
    assert e.value.paths == ["stacks/Pulumi.initech-prod.yaml: hypervisors"]


def test_stacks_of_other_platforms_are_not_tenants():
    assert tenants(shared(), "organization/gfs2-platform/other", files()) == []


def test_an_unknown_platform_key_is_named():
    config = platform_config()
    config["hypervisors"][0]["images"] = "x"
    with pytest.raises(SpecError) as e:
        load_platform(config)
    assert e.value.paths == ["hypervisors[0].images"]
