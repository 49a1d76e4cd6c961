"""fence_virt.conf: golden files, what it says, the real fence_virtd parsing it, and the
real daemon refusing what the tenant may not fence."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from itertools import combinations
from typing import Callable, NamedTuple

import pytest

from conftest import example_stacks, require_tool, stack_config
from render.fence_virt import fence_virt_conf
from spec import build, load_spec
from spec.vocabulary import SECRET_KEYS
from spec.topology import Topology

STACKS = example_stacks()
FOREIGN_DOMAIN = "g2-intruder-prod-m1"


def topology(stack: str) -> Topology:
    config = stack_config(stack)
    secrets = frozenset(key for key, field in SECRET_KEYS.items() if not _has(config, field))
    return build(load_spec(config, secrets))


def _has(config: dict, dotted: str) -> bool:
    section, key = dotted.split(".")
    return key in (config.get(section) or {})


def local_uri(topo: Topology) -> str:
    return f"{topo.hypervisor(topo.spec.members.hypervisor).driver}:///system"


def render(topo: Topology) -> str:
    return fence_virt_conf(topo, f"{topo.names.host_dir}/fence_xvm.key", topo.bridge, local_uri(topo))


def parse(text: str) -> list:
    """The file as nested (key, value | list) pairs: a reading independent of the renderer."""
    tokens = re.findall(r'"[^"]*"|[{};=]|[^\s{};="]+', re.sub(r"#[^\n]*", "", text))
    tree, rest = _parse_body(tokens)
    assert not rest, f"unbalanced braces near {rest[:3]}"
    return tree


def _parse_body(tokens: list[str]) -> tuple[list, list[str]]:
    body: list = []
    while tokens and tokens[0] != "}":
        key, op, *tokens = tokens
        if op == "{":
            child, tokens = _parse_body(tokens)
            body.append((key, child))
            tokens = tokens[1:]
        else:
            value, semi, *tokens = tokens
            assert op == "=" and semi == ";", f"bad setting {key} {op} {value} {semi}"
            body.append((key, value.strip('"')))
    return body, tokens


def section(tree: list, *path: str) -> list:
    for name in path:
        matches = [value for key, value in tree if key == name]
        assert len(matches) == 1, f"{name} appears {len(matches)} times"
        tree = matches[0]
    return tree


def values(body: list, key: str) -> list[str]:
    return [value for k, value in body if k == key]


@pytest.mark.parametrize("stack", STACKS)
def test_matches_golden_file(stack, golden):
    golden(f"fence_virt/{stack}.conf", render(topology(stack)))


@pytest.mark.parametrize("stack", STACKS)
def test_listener_is_this_tenants_bridge_group_port_and_key(stack):
    topo = topology(stack)
    tree = parse(render(topo))
    listener = section(tree, "listeners", "multicast")
    assert values(listener, "interface") == [topo.bridge]
    assert values(listener, "address") == [str(topo.fencing.multicast_address)]
    assert values(listener, "port") == [str(topo.fencing.port)]
    assert values(listener, "key_file") == [f"{topo.names.host_dir}/fence_xvm.key"]
    assert values(listener, "hash") == ["sha256"]
    assert section(tree, "fence_virtd") == [("listener", "multicast"), ("backend", "libvirt")]
    assert values(section(tree, "backends", "libvirt"), "uri") == [local_uri(topo)]


@pytest.mark.parametrize("stack", STACKS)
def test_group_holds_exactly_the_tenants_cluster_nodes(stack):
    topo = topology(stack)
    group = section(parse(render(topo)), "groups", "group")
    nodes = topo.cluster_nodes
    assert values(group, "name") == [topo.names.stack_id]
    assert Counter(values(group, "uuid")) == Counter(n.domain for n in nodes)
    assert Counter(values(group, "ip")) == Counter(str(n.address) for n in nodes)


def test_group_of_a_current_stack_is_its_members():
    topo = topology("globex-prod")
    group = section(parse(render(topo)), "groups", "group")
    assert values(group, "uuid") == [m.domain for m in topo.members]
    assert values(group, "ip") == [str(m.address) for m in topo.members]


def test_gnbd_server_node_may_fence_and_be_fenced():
    # In a cman cluster the GNBD server is a node: others fence it, it fences others.
    topo = topology("acme-prod")
    group = section(parse(render(topo)), "groups", "group")
    server = topo.guest("gnbd1")
    assert server.domain in values(group, "uuid")
    assert str(server.address) in values(group, "ip")


@pytest.mark.parametrize("first,second", list(combinations(STACKS, 2)))
def test_two_tenants_share_no_listener_setting(first, second):
    a, b = (section(parse(render(topology(s))), "listeners", "multicast") for s in (first, second))
    for key in ("port", "address", "interface", "key_file"):
        assert set(values(a, key)).isdisjoint(values(b, key)), f"{first} and {second} share {key}"


def test_refuses_an_interface_other_than_the_tenant_bridge():
    topo = topology("acme-prod")
    with pytest.raises(ValueError, match="g2br120"):
        fence_virt_conf(topo, "/k", "virbr0", "xen:///system")


def test_refuses_a_value_the_file_cannot_hold():
    topo = topology("acme-prod")
    with pytest.raises(ValueError, match="key_file"):
        fence_virt_conf(topo, 'a"b', topo.bridge, "xen:///system")


# ---------------------------------------------------------------------------------------
# The real fence_virtd. `-c` is its interactive configuration mode: it parses the file
# (the same sc_parse as the daemon), then asks questions. With stdin at EOF every
# question takes its default and the last one ("Replace FILE with the above?") defaults
# to no, so the file is never written; the exit status is 1 either way, so the output
# tells: the parsed tree between "=== Begin/End Configuration ===", or "Parsing of FILE
# failed" after "syntax error on line N". A value that -c would re-ask (a bad port) loops
# forever, hence the timeout.

BEGIN, END = "=== Begin Configuration ===", "=== End Configuration ==="


def real_parse(path) -> str:
    """What fence_virtd parsed from path (its dump); ValueError with what it said if it
    could not parse the file."""
    fence_virtd = require_tool("fence_virtd")
    try:
        run = subprocess.run(
            [fence_virtd, "-c", "-f", str(path)], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"fence_virtd -c kept asking (a value it rejects?):\n{e.stdout}")
    if BEGIN not in run.stdout:
        raise ValueError(run.stdout + run.stderr)
    return run.stdout.split(BEGIN, 1)[1].split(END, 1)[0]


def setting_lines(text: str) -> Counter:
    return Counter(line.strip() for line in text.splitlines() if re.match(r'\s*\w+ = ".*";$', line))


@pytest.mark.parametrize("stack", STACKS)
def test_real_fence_virtd_parses_every_setting(stack, tmp_path):
    text = render(topology(stack))
    path = tmp_path / "fence_virt.conf"
    path.write_text(text)
    dumped = real_parse(path)
    # -c only adds what it asked for (module_path); everything rendered was read as written.
    assert not setting_lines(text) - setting_lines(dumped)
    assert path.read_text() == text


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda t: t.replace('"multicast";', '"multicast"', 1), id="missing-semicolon"),
        pytest.param(lambda t: t.rstrip().rstrip("}"), id="unclosed-block"),
        pytest.param(lambda t: t.replace('uri = "', 'uri = ', 1), id="unbalanced-quote"),
        pytest.param(lambda t: t.replace("groups {", "groups {{", 1), id="extra-brace"),
    ],
)
def test_real_fence_virtd_rejects_a_broken_file(breakage, tmp_path):
    path = tmp_path / "fence_virt.conf"
    path.write_text(breakage(render(topology("acme-prod"))))
    with pytest.raises(ValueError, match=r"syntax error on line \d+"):
        real_parse(path)


# The daemon itself, in a throwaway network namespace: a bridge named like the tenant's,
# the libvirt test driver holding the tenant's domains and a foreign one, and fence_xvm
# asking from a node address and from an outsider. lo keeps no address, so fence_xvm
# sends from (and names as its source) only the bridge address.
NAMESPACE_SCRIPT = r"""
set -euo pipefail
conf=$1 bridge=$2 key=$3 address=$4 port=$5 prefix=$6 log=$7; shift 7
ip link set lo up
ip addr flush dev lo
ip link add "$bridge" type bridge
ip link set "$bridge" up
ip addr add "${1%%:*}/$prefix" dev "$bridge"
stdbuf -oL fence_virtd -F -f "$conf" -d 3 -p "${log%.log}.pid" >"$log" 2>&1 &
daemon=$!
trap 'kill "$daemon" 2>/dev/null || true; wait "$daemon" || true' EXIT
for query in "$@"; do
  source=${query%%:*} domain=${query#*:}
  ip addr flush dev "$bridge"
  ip addr add "$source/$prefix" dev "$bridge"
  rc=0
  said=$(fence_xvm -o status -H "$domain" -a "$address" -p "$port" -k "$key" -t 10 2>&1) || rc=$?
  echo "RESULT $source $domain $rc ${said//$'\n'/ }"
done
"""


class Answer(NamedTuple):
    rc: int
    said: str


def node_xml(domains: list[str]) -> str:
    entries = "".join(
        f"<domain type='test'><name>{d}</name><memory>65536</memory><os><type>hvm</type></os></domain>"
        for d in domains
    )
    return f"<node>{entries}</node>"


def ask_real_daemon(
    topo: Topology, tmp_path, queries: list[tuple[str, str]], edit: Callable[[str], str] = lambda text: text
) -> dict[tuple[str, str], Answer]:
    """fence_xvm -o status for each (source address, domain), answered by the real
    fence_virtd running this tenant's rendered config (after edit)."""
    for tool in ("unshare", "ip", "stdbuf", "fence_virtd", "fence_xvm"):
        require_tool(tool)
    nodes = tmp_path / "node.xml"
    nodes.write_text(node_xml([n.domain for n in topo.cluster_nodes] + [FOREIGN_DOMAIN]))
    key = tmp_path / "fence_xvm.key"
    key.write_bytes(bytes(range(32)))
    conf = tmp_path / "fence_virt.conf"
    conf.write_text(edit(fence_virt_conf(topo, str(key), topo.bridge, f"test://{nodes}")))
    script = tmp_path / "namespace.sh"
    script.write_text(NAMESPACE_SCRIPT)
    log = tmp_path / "fence_virtd.log"
    plan = topo.fencing
    args = [str(conf), topo.bridge, str(key), str(plan.multicast_address), str(plan.port)]
    args += [str(topo.spec.network.cidr.prefixlen), str(log)] + [f"{src}:{dom}" for src, dom in queries]
    run = subprocess.run(["unshare", "-n", "bash", str(script), *args], capture_output=True, text=True, timeout=180)
    if run.returncode != 0:
        pytest.fail(f"network namespace run failed (it needs root):\n{run.stdout}{run.stderr}\n{log.read_text()}")
    answers = {
        (src, dom): Answer(int(rc), said)
        for src, dom, rc, said in re.findall(r"^RESULT (\S+) (\S+) (\d+) ?(.*)$", run.stdout, re.M)
    }
    assert set(answers) == set(queries), run.stdout + log.read_text()
    return answers


@pytest.mark.parametrize("stack", STACKS)
def test_real_daemon_fences_only_this_tenants_nodes_and_only_for_them(stack, tmp_path):
    topo = topology(stack)
    nodes = topo.cluster_nodes
    outsider = str(topo.spec.network.cidr.network_address + 99)
    assert outsider not in {str(n.address) for n in nodes}
    own = (str(nodes[0].address), nodes[-1].domain)
    foreign = (str(nodes[0].address), FOREIGN_DOMAIN)
    stranger = (outsider, nodes[-1].domain)
    answers = ask_real_daemon(topo, tmp_path, [own, foreign, stranger])
    assert answers[own] == Answer(0, "Status: ON"), answers[own]
    for refused in (foreign, stranger):
        assert answers[refused].rc != 0 and "Permission denied" in answers[refused].said, answers[refused]


def test_real_daemon_without_groups_fences_anything(tmp_path):
    # Why the groups matter (and proof the test above can fail): with no static map,
    # fence_virtd lets anyone holding the key fence any domain on the hypervisor.
    topo = topology("acme-prod")
    foreign = (str(topo.members[0].address), FOREIGN_DOMAIN)
    answers = ask_real_daemon(topo, tmp_path, [foreign], edit=lambda text: text.split("groups {")[0])
    assert answers[foreign] == Answer(0, "Status: ON"), answers[foreign]
