"""cluster.conf for cman: golden file, what it says, and the checker catching each
broken variant."""

from __future__ import annotations

import copy
from typing import Callable

import pytest
from lxml import etree

from conftest import stack_config
from render.cman import FENCE_DAEMON, check_cluster_conf, cluster_conf
from spec import build, load_spec
from spec import SpecError
from spec.vocabulary import SECRET_KEYS
from spec.topology import Topology


def topology(config: dict) -> Topology:
    secrets = frozenset(key for key, field in SECRET_KEYS.items() if not _has(config, field))
    return build(load_spec(config, secrets))


def _has(config: dict, dotted: str) -> bool:
    section, key = dotted.split(".")
    return key in (config.get(section) or {})


def acme(**changes) -> dict:
    """acme-prod's config with some top-level keys replaced."""
    config = copy.deepcopy(stack_config("acme-prod"))
    config.update(changes)
    return config


def two_members(protocol: str) -> dict:
    storage = copy.deepcopy(stack_config("acme-prod")["storage"])
    storage["exports"][0]["protocol"] = protocol
    members = {**stack_config("acme-prod")["members"], "names": ["web1", "web2"]}
    members["addresses"] = members["addresses"][:2]
    return acme(members=members, storage=storage)


def rendered(config: dict | None = None, **kwargs) -> etree._Element:
    return etree.fromstring(cluster_conf(topology(config or acme()), **kwargs).encode())


def test_matches_golden_file(golden):
    golden("cman/acme-prod.conf", cluster_conf(topology(acme())))


def test_checker_passes_the_rendered_file():
    assert check_cluster_conf(cluster_conf(topology(acme()))) == []


def test_cluster_name_and_config_version():
    root = rendered(config_version=7)
    assert (root.tag, root.get("name"), root.get("config_version")) == ("cluster", "acme-prod", "7")


def test_nodes_are_the_members_then_the_gnbd_server():
    topo = topology(acme())
    nodes = [(n.get("name"), n.get("nodeid"), n.get("votes")) for n in rendered().iter("clusternode")]
    assert nodes == [("web1", "1", "1"), ("web2", "2", "1"), ("web3", "3", "1"), ("gnbd1", "4", "1")]
    assert [n.domain for n in topo.cluster_nodes] == [topo.guest(name).domain for name, _, _ in nodes]


def test_every_node_is_fenced_by_fence_xvm_with_its_own_domain():
    topo = topology(acme())
    root = rendered()
    (device,) = root.iter("fencedevice")
    assert dict(device.attrib) == {
        "name": "xvm",
        "agent": "fence_xvm",
        "key_file": topo.fencing.member_key_path,
        "multicast_address": "225.0.0.120",
        "port": "20120",
    }
    for node in root.iter("clusternode"):
        (method,) = node.iterfind("fence/method")
        (use,) = method.iterfind("device")
        assert dict(use.attrib) == {"name": "xvm", "domain": topo.guest(node.get("name")).domain}


def test_fence_daemon_keeps_startup_fencing_and_fences_at_once():
    (daemon,) = rendered().iter("fence_daemon")
    assert dict(daemon.attrib) == FENCE_DAEMON
    assert daemon.get("clean_start") == "0" and daemon.get("post_fail_delay") == "0"


def test_three_nodes_use_ordinary_quorum():
    (cman,) = rendered().iter("cman")
    assert dict(cman.attrib) == {}


def test_two_members_with_a_gnbd_server_are_three_votes():
    config = two_members("gnbd")
    root = rendered(config)
    assert dict(root.find("cman").attrib) == {}
    assert [n.get("name") for n in root.iter("clusternode")] == ["web1", "web2", "gnbd1"]
    assert check_cluster_conf(cluster_conf(topology(config))) == []


def test_lab_without_fencing_has_no_fence_devices_and_says_so():
    config = acme(fencing={"method": "none", "labWithoutFencing": True})
    text = cluster_conf(topology(config))
    root = etree.fromstring(text.encode())
    assert root.find("fencedevices") is None
    assert all(node.find("fence") is None for node in root.iter("clusternode"))
    assert "labWithoutFencing" in text
    assert check_cluster_conf(text) == []


def test_fence_virsh_is_refused_before_rendering():
    config = acme(fencing={"method": "fence_virsh"}, network={**stack_config("acme-prod")["network"], "mode": "isolated"})
    with pytest.raises(SpecError, match="fencing.method: fence_virsh is refused until it works end to end"):
        topology(config)


# ---------------------------------------------------------------------------------------
# Each breakage below is one thing cman, fenced or fence_xvm would refuse or trip over.

Breakage = Callable[[etree._Element], None]


def _set(path: str, attr: str, value: str | None, **more: str) -> Breakage:
    def breakage(root: etree._Element) -> None:
        element = root if path == "." else root.find(path)
        if value is None:
            del element.attrib[attr]
        else:
            element.set(attr, value)
        for name, extra in more.items():
            element.set(name, extra)

    return breakage


def _remove(path: str) -> Breakage:
    def breakage(root: etree._Element) -> None:
        element = root.find(path)
        element.getparent().remove(element)

    return breakage


def _duplicate(path: str) -> Breakage:
    def breakage(root: etree._Element) -> None:
        element = root.find(path)
        element.addnext(copy.deepcopy(element))

    return breakage


def _add_section(tag: str) -> Breakage:
    return lambda root: root.append(etree.Element(tag))


FIRST_NODE = "clusternodes/clusternode[1]"
SECOND_NODE = "clusternodes/clusternode[2]"
FIRST_DEVICE = f"{FIRST_NODE}/fence/method/device"

BREAKAGES = [
    ("no-name", _set(".", "name", None), "has no name"),
    ("long-name", _set(".", "name", "acme-production1"), "longer than cman's 15"),
    ("no-config-version", _set(".", "config_version", None), "config_version must be a positive integer"),
    ("config-version-zero", _set(".", "config_version", "0"), "config_version must be a positive integer"),
    ("config-version-text", _set(".", "config_version", "v2"), "config_version must be a positive integer"),
    ("duplicate-node-name", _set(SECOND_NODE, "name", "web1"), "name 'web1' is used by 2 nodes"),
    ("duplicate-nodeid", _set(SECOND_NODE, "nodeid", "1"), "nodeid '1' is used by 2 nodes"),
    ("nodeid-zero", _set(FIRST_NODE, "nodeid", "0"), "nodeid must be a positive integer"),
    ("no-nodeid", _set(FIRST_NODE, "nodeid", None), "nodeid must be a positive integer"),
    ("node-without-name", _set(FIRST_NODE, "name", None), "has no name"),
    ("votes-zero", _set(FIRST_NODE, "votes", "0"), "votes must be a positive integer"),
    ("unknown-fence-device", _set(FIRST_DEVICE, "name", "ipmi"), "'ipmi' is not in <fencedevices>"),
    ("node-without-fencing", _remove(f"{FIRST_NODE}/fence"), "web1 has no fence device"),
    ("method-without-name", _set(f"{FIRST_NODE}/fence/method", "name", None), "a fence method has no name"),
    ("xvm-device-without-domain", _set(FIRST_DEVICE, "domain", None), "names no domain"),
    ("fence-virt-ipport", _set("fencedevices/fencedevice", "ipport", "20120"), "does not know 'ipport'"),
    ("plug-on-device", _set(FIRST_DEVICE, "plug", "x"), "does not know 'plug'"),
    ("fencedevice-without-agent", _set("fencedevices/fencedevice", "agent", None), "needs name and agent"),
    ("duplicate-fencedevice", _duplicate("fencedevices/fencedevice"), "fencedevice name 'xvm' is used 2 times"),
    ("two-node-with-four-nodes", _set("cman", "two_node", "1", expected_votes="1"), "needs exactly 2 nodes, there are 4"),
    ("expected-votes-unreachable", _set("cman", "expected_votes", "5"), "never quorate"),
    ("expected-votes-text", _set("cman", "expected_votes", "all"), "expected_votes must be a positive integer"),
    ("unknown-section", _add_section("fencing"), "<fencing> is not a cluster.conf section"),
    ("duplicate-section", _duplicate("fence_daemon"), "<fence_daemon> appears 2 times"),
    ("no-clusternodes", _remove("clusternodes"), "<clusternodes> is missing"),
]


@pytest.mark.parametrize("breakage,expected", [pytest.param(b, e, id=i) for i, b, e in BREAKAGES])
def test_checker_catches(breakage, expected):
    root = rendered()
    breakage(root)
    problems = check_cluster_conf(etree.tostring(root).decode())
    assert len(problems) == 1 and expected in problems[0], problems


def test_checker_catches_two_node_with_wrong_expected_votes_on_two_nodes():
    root = rendered(two_members("gnbd"))
    nodes = root.find("clusternodes")
    nodes.remove(nodes[-1])
    root.find("cman").attrib.update({"two_node": "1", "expected_votes": "2"})
    problems = check_cluster_conf(etree.tostring(root).decode())
    assert problems == ["<cman two_node=\"1\"> needs expected_votes=\"1\", got '2'"]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("<cluster name='a' config_version='1'><clusternodes>", "not well-formed XML"),
        ("<corosync/>", "the root element is <corosync>"),
        ("<cluster name='a' config_version='1'><clusternodes/></cluster>", "lists no node"),
    ],
)
def test_checker_catches_the_wrong_document(text, expected):
    problems = check_cluster_conf(text)
    assert any(expected in p for p in problems), problems
