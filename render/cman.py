"""/etc/cluster/cluster.conf for cman (RHEL/CentOS 5): nodes, quorum and fencing.

Pure: a Topology in, XML text out, and a structural checker for what cman or fenced
would refuse or trip over. No Pulumi import.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Iterator, NamedTuple, Optional

from lxml import etree

from spec.rules import CMAN_CLUSTER_NAME_MAX as CLUSTER_NAME_MAX
from spec.topology import ClusterNode, Topology

XVM_DEVICE = "xvm"

# fenced(8) of cluster-2: GFS stalls until a failed node is fenced, so do not wait after
# a failure; guests booted together get time to join before startup fencing ("a typical
# setting for Post-Join Delay is between 20 and 30 seconds", RHEL 5 Cluster
# Administration); startup fencing stays on, as skipping it risks GFS corruption.
FENCE_DAEMON = {"post_fail_delay": "0", "post_join_delay": "30", "clean_start": "0"}


class FenceMethod(NamedTuple):
    """How one fence method appears in cluster.conf."""

    fencedevices: Callable[[Topology], list[dict[str, str]]]
    node_device: Callable[[ClusterNode], Optional[dict[str, str]]]
    note: Optional[str] = None


def _xvm_fencedevices(topo: Topology) -> list[dict[str, str]]:
    plan = topo.fencing
    # RHEL 5's fence_xvm (cman 2.0) reads `port` as the IP port; fence-virt (RHEL 6 on)
    # renamed it ipport and reads `port` as the domain, so this is RHEL 5 only.
    return [
        {
            "name": XVM_DEVICE,
            "agent": "fence_xvm",
            "key_file": plan.member_key_path,
            "multicast_address": str(plan.multicast_address),
            "port": str(plan.port),
        }
    ]


FENCE_METHODS = {
    "fence_xvm": FenceMethod(_xvm_fencedevices, lambda node: {"name": XVM_DEVICE, "domain": node.domain}),
    "none": FenceMethod(
        lambda topo: [],
        lambda node: None,
        " fencing.method none (labWithoutFencing): no fence devices; when a node fails, "
        "GFS2 hangs until it is back. Never use this with data you want to keep. ",
    ),
}


def cluster_conf(topo: Topology, config_version: int = 1) -> str:
    """cluster.conf of this stack; raise config_version for every change cman should load."""
    if config_version < 1:
        raise ValueError(f"config_version must be at least 1, got {config_version}")
    # spec/rules.py leaves a validated topology only these methods.
    fencing = FENCE_METHODS[topo.fencing.method]
    root = etree.Element("cluster", {"name": topo.cluster_name, "config_version": str(config_version)})
    # No two_node: the GNBD server is a node too, so even two members make three votes
    # and the ordinary majority applies.
    etree.SubElement(root, "cman")
    etree.SubElement(root, "fence_daemon", FENCE_DAEMON)
    root.append(_clusternodes(topo.cluster_nodes, fencing))
    devices = fencing.fencedevices(topo)
    if devices:
        section = etree.SubElement(root, "fencedevices")
        for attrs in devices:
            etree.SubElement(section, "fencedevice", attrs)
    if fencing.note:
        root.append(etree.Comment(fencing.note))
    return etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8").decode()


def _clusternodes(nodes: tuple[ClusterNode, ...], fencing: FenceMethod) -> etree._Element:
    section = etree.Element("clusternodes")
    for node in nodes:
        element = etree.SubElement(section, "clusternode", {"name": node.name, "nodeid": str(node.nodeid), "votes": "1"})
        device = fencing.node_device(node)
        if device is not None:
            method = etree.SubElement(etree.SubElement(element, "fence"), "method", {"name": "1"})
            etree.SubElement(method, "device", device)
    return section


# ---------------------------------------------------------------------------------------
# Structural checks. cman's own RelaxNG (cluster.rng, shipped from RHEL 6) is not here;
# these are the rules it and the daemons imply that matter for this program.

# Sections the cluster element may hold (cluster.rng); each at most once but uidgid.
SECTIONS = {
    "cman", "totem", "quorumd", "fence_daemon", "fence_xvmd", "dlm", "gfs_controld",
    "group", "logging", "clusternodes", "fencedevices", "rm", "clvmd",
}
REPEATABLE_SECTIONS = {"uidgid"}

# The stdin arguments RHEL 5's fence_xvm understands (cluster-2 fence/agents/xvm/
# options.c); fenced passes it the fencedevice's and the device's attributes.
RHEL5_FENCE_XVM_ARGS = {
    "agent", "self", "debug", "ip_family", "multicast_address", "port", "retrans", "hash",
    "auth", "key_file", "option", "domain", "use_uuid", "timeout",
}

Check = Callable[[etree._Element], Iterator[str]]
CHECKS: list[Check] = []


def check(fn: Check) -> Check:
    CHECKS.append(fn)
    return fn


def check_cluster_conf(text: str) -> list[str]:
    """What is wrong with a cluster.conf, as readable problems (empty when none)."""
    try:
        root = etree.fromstring(text.encode())
    except etree.XMLSyntaxError as e:
        return [f"not well-formed XML: {e}"]
    if root.tag != "cluster":
        return [f"the root element is <{root.tag}>; cman reads <cluster>"]
    return [problem for fn in CHECKS for problem in fn(root)]


def _elements(parent: etree._Element, tag: Optional[str] = None) -> list[etree._Element]:
    return [e for e in parent if isinstance(e.tag, str) and (tag is None or e.tag == tag)]


def _positive_int(value: Optional[str]) -> bool:
    return value is not None and value.isdigit() and int(value) > 0


def _nodes(root: etree._Element) -> list[etree._Element]:
    return [n for section in _elements(root, "clusternodes") for n in _elements(section, "clusternode")]


def _fencedevices(root: etree._Element) -> list[etree._Element]:
    return [d for section in _elements(root, "fencedevices") for d in _elements(section, "fencedevice")]


def _node_devices(node: etree._Element) -> list[etree._Element]:
    return [d for fence in _elements(node, "fence") for m in _elements(fence, "method") for d in _elements(m, "device")]


@check
def cluster_attributes(root: etree._Element) -> Iterator[str]:
    name = root.get("name")
    if not name:
        yield "<cluster> has no name"
    elif len(name) > CLUSTER_NAME_MAX:
        yield f"cluster name {name!r} is longer than cman's {CLUSTER_NAME_MAX} characters"
    if not _positive_int(root.get("config_version")):
        yield f"<cluster> config_version must be a positive integer, got {root.get('config_version')!r}"


@check
def sections(root: etree._Element) -> Iterator[str]:
    counts = Counter(e.tag for e in _elements(root))
    for tag, n in counts.items():
        if tag not in SECTIONS | REPEATABLE_SECTIONS:
            yield f"<{tag}> is not a cluster.conf section"
        elif n > 1 and tag not in REPEATABLE_SECTIONS:
            yield f"<{tag}> appears {n} times; cman reads one"
    if counts["clusternodes"] == 0:
        yield "<clusternodes> is missing"


@check
def nodes(root: etree._Element) -> Iterator[str]:
    found = _nodes(root)
    if _elements(root, "clusternodes") and not found:
        yield "<clusternodes> lists no node"
    for node in found:
        label = node.get("name") or f"nodeid {node.get('nodeid')}"
        if not node.get("name"):
            yield f"a clusternode ({label}) has no name"
        if not _positive_int(node.get("nodeid")):
            yield f"clusternode {label}: nodeid must be a positive integer, got {node.get('nodeid')!r}"
        if node.get("votes") is not None and not _positive_int(node.get("votes")):
            yield f"clusternode {label}: votes must be a positive integer, got {node.get('votes')!r}"
    for attr in ("name", "nodeid"):
        for value, n in Counter(n.get(attr) for n in found if n.get(attr)).items():
            if n > 1:
                yield f"clusternode {attr} {value!r} is used by {n} nodes"


@check
def quorum(root: etree._Element) -> Iterator[str]:
    cman = next(iter(_elements(root, "cman")), None)
    if cman is None:
        return
    expected = cman.get("expected_votes")
    if expected is not None and not _positive_int(expected):
        yield f"<cman> expected_votes must be a positive integer, got {expected!r}"
    count = len(_nodes(root))
    if cman.get("two_node") == "1":
        if count != 2:
            yield f"<cman two_node=\"1\"> needs exactly 2 nodes, there are {count}"
        if expected != "1":
            yield f"<cman two_node=\"1\"> needs expected_votes=\"1\", got {expected!r}"
    elif _positive_int(expected):
        votes = sum(int(n.get("votes", "1")) for n in _nodes(root) if _positive_int(n.get("votes", "1")))
        if int(expected) > votes:
            yield f"<cman> expected_votes {expected} is more than the {votes} votes of all nodes; never quorate"


@check
def fence_references(root: etree._Element) -> Iterator[str]:
    devices = _fencedevices(root)
    for device in devices:
        if not device.get("name") or not device.get("agent"):
            yield f"fencedevice {device.get('name', '(no name)')} needs name and agent"
    names = Counter(d.get("name") for d in devices if d.get("name"))
    for name, n in names.items():
        if n > 1:
            yield f"fencedevice name {name!r} is used {n} times"
    for node in _nodes(root):
        for fence in _elements(node, "fence"):
            for method in _elements(fence, "method"):
                if not method.get("name"):
                    yield f"clusternode {node.get('name')}: a fence method has no name"
        used = _node_devices(node)
        for device in used:
            if device.get("name") not in names:
                yield f"clusternode {node.get('name')}: fence device {device.get('name')!r} is not in <fencedevices>"
        if devices and not used:
            yield f"clusternode {node.get('name')} has no fence device; fenced could never fence it"


@check
def fence_xvm_arguments(root: etree._Element) -> Iterator[str]:
    xvm = {d.get("name"): d for d in _fencedevices(root) if d.get("agent") == "fence_xvm"}
    for name, device in xvm.items():
        for attr in sorted(set(device.attrib) - RHEL5_FENCE_XVM_ARGS - {"name"}):
            yield f"fencedevice {name}: RHEL 5's fence_xvm does not know {attr!r}"
    for node in _nodes(root):
        for device in _node_devices(node):
            if device.get("name") not in xvm:
                continue
            if not device.get("domain"):
                yield f"clusternode {node.get('name')}: fence_xvm device {device.get('name')} names no domain"
            for attr in sorted(set(device.attrib) - RHEL5_FENCE_XVM_ARGS - {"name"}):
                yield f"clusternode {node.get('name')}: RHEL 5's fence_xvm does not know {attr!r}"
