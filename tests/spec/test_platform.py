"""The platform stack's spec: shared hypervisors and the registry of tenants."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import ROOT
from spec import SpecError
from spec.platform import load_platform, registry


def shared():
    data = yaml.safe_load((ROOT / "platform" / "stacks" / "Pulumi.shared.yaml").read_text())
    return copy.deepcopy({k.split(":", 1)[1]: v for k, v in data["config"].items()})


def paths(config):
    with pytest.raises(SpecError) as e:
        load_platform(config)
    return e.value.paths


def test_the_example_platform_publishes_its_registry():
    assert registry(load_platform(shared())) == [
        {"hypervisor": "kvm1.example.net", "stackId": "globex-prod", "vlanId": 230, "fencePort": 20230},
        {"hypervisor": "dom0.example.net", "stackId": "acme-prod", "vlanId": 120, "fencePort": 20120},
    ]


def test_a_vlan_id_belongs_to_one_tenant_per_hypervisor():
    config = shared()
    config["tenants"].append({"stackId": "initech-prod", "hypervisor": "kvm1", "vlanId": 230, "fencePort": 21000})
    assert paths(config) == ["tenants[2].vlanId"]


def test_the_same_vlan_id_on_another_hypervisor_is_fine():
    config = shared()
    config["tenants"].append({"stackId": "initech-prod", "hypervisor": "dom0", "vlanId": 230})
    assert len(registry(load_platform(config))) == 3


def test_a_fence_port_belongs_to_one_tenant_per_hypervisor():
    config = shared()
    config["tenants"].append({"stackId": "initech-prod", "hypervisor": "kvm1", "vlanId": 231, "fencePort": 20230})
    assert paths(config) == ["tenants[2].fencePort"]


def test_a_stack_registers_once():
    config = shared()
    config["tenants"].append({"stackId": "globex-prod", "hypervisor": "dom0", "vlanId": 300})
    assert paths(config) == ["tenants[2].stackId"]


def test_an_unknown_hypervisor_is_named():
    config = shared()
    config["tenants"][0]["hypervisor"] = "kvm9"
    assert paths(config) == ["tenants[0].hypervisor"]


def test_an_unknown_key_is_named():
    config = shared()
    config["tenants"][0]["vlan"] = 5
    assert paths(config) == ["tenants[0].vlan"]
