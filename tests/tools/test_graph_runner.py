"""tools/graph_runner.py without guests: the graph it executes, the domain XML it builds
in place of the libvirt provider, and the result line every node script ends with (which
its rerun check reads)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from lxml import etree

from render import guest as guest_scripts
from spec.topology import FencingPlan
from tests.conftest import stack_config
from tools import graph_runner, program_graph

FIXTURES = Path(__file__).resolve().parents[1] / "render" / "fixtures"


@pytest.fixture
def local_graph(tmp_path, monkeypatch) -> graph_runner.Graph:
    """The local stack's graph, with throw-away key files instead of .state/secrets/."""
    import components.stack_input as stack_input

    folder = tmp_path / ".state" / "secrets" / "local-dev"
    folder.mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "id_ed25519")], check=True)
    (folder / "fence_xvm.key").write_bytes(b"k" * 512)
    (folder / "corosync.key").write_bytes(b"a" * 256)
    monkeypatch.setattr(stack_input, "ROOT", tmp_path)
    return graph_runner.Graph(program_graph.capture("local", stack_config("local"), {}, preview=True).by_urn)


def test_every_resource_runs_after_what_it_depends_on(local_graph):
    order = [n.urn for n in local_graph.order()]
    assert len(order) == len(local_graph.nodes) == 39
    for node in local_graph.nodes.values():
        assert all(order.index(d) < order.index(node.urn) for d in node.deps), node.name


def test_fence_virtd_starts_after_the_bridge_it_binds_to(local_graph):
    listener = local_graph.by_name["local-dev-fencing-listener-fence-virtd"]
    network = local_graph.by_name["local-dev-here-net-network"]
    assert network.urn in listener.deps


def test_libvirt_references_lead_back_to_their_resources(local_graph):
    root = local_graph.by_name["local-dev-m1-root"]
    assert local_graph.by_id[root.inputs["baseVolumeId"]].name == "local-dev-here-image"
    domain = local_graph.by_name["local-dev-m1-domain"]
    nic = domain.inputs["networkInterfaces"][0]
    assert local_graph.by_id[nic["networkId"]].type == graph_runner.NETWORK


def _shape(xml: str) -> list[tuple]:
    """Element paths with attributes, without the texts that differ per machine."""
    root = etree.fromstring(xml.encode())
    out = []
    for e in root.iter():
        if not isinstance(e.tag, str):
            continue
        attrs = {k: v for k, v in e.attrib.items() if k != "address"}
        text = (e.text or "").strip() if e.tag not in ("kernel", "initrd", "cmdline", "name") else ""
        out.append((root.getroottree().getpath(e), tuple(sorted(attrs.items())), text))
    return out


@pytest.mark.parametrize("guest, fixture", [("m1", "qemu-member.xml"), ("s1", "qemu-server.xml")])
def test_domain_xml_is_what_the_provider_generates(local_graph, tmp_path, guest, fixture):
    ex = graph_runner.Executor(local_graph, print, tmp_path)
    node = local_graph.by_name[f"local-dev-{guest}-domain"]
    built = ex.domain_xml(node)
    provider = etree.tostring(etree.parse(str(FIXTURES / fixture)).getroot(), encoding="unicode")
    assert _shape(built) == _shape(provider)
    cmdline = etree.fromstring(built.encode()).findtext("os/cmdline").split()
    assert cmdline == sorted(cmdline) and "rw" in cmdline and f"gfs2.hostname={guest}" in cmdline


def test_network_xml_is_isolated_without_dhcp_or_dns(local_graph, tmp_path):
    ex = graph_runner.Executor(local_graph, print, tmp_path)
    net = etree.fromstring(ex.network_xml(local_graph.by_name["local-dev-here-net-network"]).encode())
    assert net.find("forward") is None and net.find("ip/dhcp") is None
    assert net.find("dns").get("enable") == "no"
    assert net.find("bridge").get("name") == "g2br10"
    assert (net.find("ip").get("address"), net.find("ip").get("prefix")) == ("10.77.10.1", "24")


def test_secrets_are_revealed_wherever_they_sit():
    marked = {program_graph.SECRET_MARK: program_graph.SECRET_SIG, "value": {"privateKey": "k"}}
    assert program_graph.reveal({"connection": marked}) == {"connection": {"privateKey": "k"}}
    inner = {program_graph.SECRET_MARK: program_graph.SECRET_SIG, "value": "x"}
    assert program_graph.reveal([inner, "y"]) == ["x", "y"]


def _run(script: str, stdin: bytes = b"") -> list[str]:
    p = subprocess.run(["bash", "-c", script], input=stdin, capture_output=True, check=True)
    return p.stdout.decode().splitlines()


def test_a_script_says_changed_then_unchanged(tmp_path):
    # fence_key only reads topo.fencing: a stand-in with just that is enough.
    topo = type("T", (), {"fencing": FencingPlan("fence_xvm", 1229, "225.0.0.12", str(tmp_path / "k/fence.key"))})
    script = guest_scripts.fence_key(topo)
    first = _run(script.create, b"a2V5LW1hdGVyaWFs\n")
    assert first[-1].endswith("]: result: changed: fence key written to " + str(tmp_path / "k/fence.key"))
    second = _run(script.create, b"a2V5LW1hdGVyaWFs\n")
    assert second[-1].endswith("]: result: unchanged")
    assert not list((tmp_path / "k").glob("fence.key.*")), "the temporary copy was left behind"
    gone = _run(script.delete)
    assert gone[-1].endswith("]: result: changed: fence key removed")
    assert _run(script.delete)[-1].endswith("]: result: unchanged")


def test_a_failing_script_prints_no_result_line():
    from render.script import render

    p = subprocess.run(["bash", "-c", render("nothing.sh", "t") + "\nfalse\n"], capture_output=True, text=True)
    assert p.returncode == 1 and "result:" not in p.stdout
