"""How the program reaches each machine, as the Topology decides it: every guest and
external server by its address, a guest of a remote hypervisor through that hypervisor,
and a hypervisor over SSH unless it is this machine."""

from __future__ import annotations

import pytest

from bad_cases import Case, _external, load
from spec import build
from spec.topology import Endpoint

KVM1 = Endpoint("kvm1.example.net", "root")
KVM2 = {"name": "kvm2", "uri": "qemu+ssh://root@kvm2.example.net/system", "trunk": "bond0"}


def topology(stack: str, *changes):
    return build(load(Case("endpoints", stack, changes, "", "")).spec)


def test_a_local_hypervisor_is_this_machine_and_its_guests_are_dialled_directly():
    topo = topology("local")
    assert topo.hypervisor_endpoint("here") is None
    assert set(topo.endpoints) == {"s1", "m1", "m2", "m3"}
    assert topo.endpoint("s1") == Endpoint("10.77.10.11", "root")
    assert topo.endpoint("m3") == Endpoint("10.77.10.23", "root")


@pytest.mark.parametrize(
    "stack,hypervisor,guests",
    [
        ("globex-prod", KVM1, {"iscsi1": "10.23.0.11", "iscsi2": "10.23.0.12", "m1": "10.23.0.21", "m4": "10.23.0.24"}),
        ("acme-prod", Endpoint("dom0.example.net", "root"), {"gnbd1": "192.168.120.11", "web2": "192.168.120.22"}),
    ],
)
def test_the_guests_of_a_remote_hypervisor_are_reached_through_it(stack, hypervisor, guests):
    topo = topology(stack)
    assert topo.hypervisor_endpoint(topo.spec.hypervisors[0].name) == hypervisor
    assert set(topo.endpoints) == {g.name for g in topo.guests}
    for name, address in guests.items():
        assert topo.endpoint(name) == Endpoint(address, "root", jump=hypervisor)


def test_an_external_server_is_dialled_directly_beside_a_remote_hypervisor():
    topo = topology("globex-prod", *_external("10.23.0.50"))
    assert topo.endpoint("san1") == Endpoint("10.23.0.50", "root")
    assert topo.endpoint("m1").jump == KVM1


def test_a_hypervisor_uri_without_a_user_is_reached_as_root():
    topo = topology("globex-prod", ("hypervisors[0].uri", "qemu+ssh://kvm1.example.net/system"))
    assert topo.hypervisor_endpoint("kvm1") == KVM1


def test_each_guest_is_reached_through_its_own_hypervisor():
    topo = topology("globex-prod", ("hypervisors[1]", KVM2), ("storage.servers[1].hypervisor", "kvm2"))
    assert topo.endpoint("iscsi2").jump == Endpoint("kvm2.example.net", "root")
    assert topo.endpoint("iscsi1").jump == KVM1


def test_a_guest_on_this_machine_needs_no_jump_when_another_hypervisor_is_remote():
    here = {"name": "here", "uri": "qemu:///system", "trunk": "bond0"}
    topo = topology("globex-prod", ("hypervisors[1]", here), ("storage.servers[1].hypervisor", "here"))
    assert topo.hypervisor_endpoint("here") is None
    assert topo.endpoint("iscsi2") == Endpoint("10.23.0.12", "root")
    assert topo.endpoint("iscsi1").jump == KVM1
