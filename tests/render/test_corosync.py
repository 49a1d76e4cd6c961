"""corosync.conf: what it says about the members and quorum, and that corosync accepts it."""

from __future__ import annotations

import copy
import os
import secrets
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import pytest

from conftest import example_stacks, require_tool, stack_config
from render.corosync import corosync_conf
from spec import build, load_spec
from spec.vocabulary import SECRET_KEY_NAMES

SECRETS = SECRET_KEY_NAMES
CURRENT_STACKS = [s for s in example_stacks() if stack_config(s).get("generation") == "current"]
# corosync-keygen writes 2048 bits; corosync refuses fewer than 1024.
AUTHKEY_BYTES = 256


def topology(config: dict, stack: str = "local"):
    return build(load_spec(config, frozenset() if stack == "local" else SECRETS))


def stack_topology(stack: str):
    return topology(stack_config(stack), stack)


def two_member_topology():
    config = copy.deepcopy(stack_config("local"))
    config["members"]["count"] = 2
    return topology(config)


def parse(text: str) -> dict:
    """corosync.conf as nested dicts; a section that repeats (node) becomes a list."""
    root: dict = {}
    stack = [root]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("{"):
            section: dict = {}
            parent = stack[-1]
            name = line[:-1].strip()
            if name in parent:
                existing = parent[name]
                parent[name] = (existing if isinstance(existing, list) else [existing]) + [section]
            else:
                parent[name] = section
            stack.append(section)
        elif line == "}":
            stack.pop()
        else:
            key, _, value = line.partition(":")
            stack[-1][key.strip()] = value.strip()
    assert stack == [root], "unbalanced braces"
    return root


def nodes(conf: dict) -> list[dict]:
    node = conf["nodelist"]["node"]
    return node if isinstance(node, list) else [node]


# --- what the file says --------------------------------------------------------------


@pytest.mark.parametrize("stack", CURRENT_STACKS)
def test_nodelist_has_each_member_with_its_nodeid_and_address(stack):
    topo = stack_topology(stack)
    conf = parse(corosync_conf(topo))
    assert [(n["name"], n["nodeid"], n["ring0_addr"]) for n in nodes(conf)] == [
        (m.name, str(m.nodeid), str(m.address)) for m in topo.members
    ]


@pytest.mark.parametrize("stack", CURRENT_STACKS)
def test_cluster_name_is_the_topology_cluster_name(stack):
    topo = stack_topology(stack)
    assert parse(corosync_conf(topo))["totem"]["cluster_name"] == topo.cluster_name


@pytest.mark.parametrize("stack", CURRENT_STACKS)
def test_totem_is_encrypted_knet(stack):
    totem = parse(corosync_conf(stack_topology(stack)))["totem"]
    assert (totem["version"], totem["transport"]) == ("2", "knet")
    assert (totem["crypto_cipher"], totem["crypto_hash"]) == ("aes256", "sha256")


@pytest.mark.parametrize("stack", CURRENT_STACKS)
def test_more_than_two_members_use_plain_votequorum(stack):
    quorum = parse(corosync_conf(stack_topology(stack)))["quorum"]
    assert quorum == {"provider": "corosync_votequorum"}


def test_two_members_turn_on_two_node_quorum():
    quorum = parse(corosync_conf(two_member_topology()))["quorum"]
    assert quorum == {"provider": "corosync_votequorum", "two_node": "1"}


def test_log_file_is_where_the_image_distribution_keeps_corosync_logs():
    debian = parse(corosync_conf(stack_topology("local")))["logging"]
    rhel = parse(corosync_conf(stack_topology("globex-prod")))["logging"]
    assert debian["logfile"] == "/var/log/corosync/corosync.log"
    assert rhel["logfile"] == "/var/log/cluster/corosync.log"
    assert debian["to_syslog"] == rhel["to_syslog"] == "yes"


def test_rendering_twice_gives_the_same_text():
    assert corosync_conf(stack_topology("globex-prod")) == corosync_conf(stack_topology("globex-prod"))


@pytest.mark.parametrize("stack", CURRENT_STACKS)
def test_corosync_conf_matches_golden(stack, golden):
    golden(f"corosync/{stack}.conf", corosync_conf(stack_topology(stack)))


# --- the real validator --------------------------------------------------------------


@contextmanager
def network_namespace(address: Optional[str]) -> Iterator[str]:
    """A new network namespace whose loopback holds address (the member corosync is on)."""
    ip = require_tool("ip")
    name = f"gfs2-test-{secrets.token_hex(4)}"
    subprocess.run([ip, "netns", "add", name], check=True)
    try:
        subprocess.run([ip, "-n", name, "link", "set", "lo", "up"], check=True)
        if address is not None:
            subprocess.run([ip, "-n", name, "addr", "add", f"{address}/32", "dev", "lo"], check=True)
        yield name
    finally:
        subprocess.run([ip, "netns", "delete", name], check=False)


# corosync -t reads the authkey from /etc/corosync/authkey (it has no option to name
# another) and opens the log file. A private mount namespace gives it a throwaway key
# and a throwaway /var/log, so the test touches neither on this host.
SANDBOX = """set -eu
mount --bind "$1" /etc/corosync
mount -t tmpfs tmpfs /var/log
mkdir -p "$(dirname "$3")"
exec "$4" -t -c "$2"
"""


def corosync_test(tmp_path: Path, text: str, local_address: Optional[str]) -> subprocess.CompletedProcess:
    corosync = require_tool("corosync")
    key_dir = tmp_path / "etc-corosync"
    key_dir.mkdir()
    key = key_dir / "authkey"
    key.write_bytes(os.urandom(AUTHKEY_BYTES))
    key.chmod(0o400)
    conf = tmp_path / "corosync.conf"
    conf.write_text(text)
    logfile = parse(text)["logging"]["logfile"]
    sandboxed = ["unshare", "--mount", "--propagation", "private", "sh", "-c", SANDBOX, "sh"]
    with network_namespace(local_address) as ns:
        return subprocess.run(
            [require_tool("ip"), "netns", "exec", ns, *sandboxed, str(key_dir), str(conf), logfile, corosync],
            capture_output=True,
            text=True,
            timeout=60,
        )


def unexpected_lines(result: subprocess.CompletedProcess) -> list[str]:
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if line.strip() and "Corosync Cluster Engine exiting normally" not in line]


def case_topology(case: str):
    return two_member_topology() if case == "two-members" else stack_topology(case)


@pytest.mark.parametrize("case", CURRENT_STACKS + ["two-members"])
def test_corosync_accepts_the_config_on_a_member(case, tmp_path):
    topo = case_topology(case)
    result = corosync_test(tmp_path, corosync_conf(topo), str(topo.members[0].address))
    assert result.returncode == 0, result.stdout + result.stderr
    assert unexpected_lines(result) == []
    assert "exiting normally" in result.stdout + result.stderr


def test_corosync_rejects_the_config_where_no_member_address_is_local(tmp_path):
    # Shows that the namespace really decides what corosync -t sees.
    result = corosync_test(tmp_path, corosync_conf(stack_topology("local")), None)
    assert result.returncode != 0
    assert "No valid name found for local host" in result.stdout + result.stderr


def test_members_under_software_emulation_get_a_longer_token():
    # TCG guests on a busy host miss corosync's default token and get fenced for it.
    local = parse(corosync_conf(stack_topology("local")))
    assert local["totem"]["token"] == "10000"
    kvm = copy.deepcopy(stack_config("local"))
    kvm["hypervisors"][0]["domainType"] = "kvm"
    assert "token" not in parse(corosync_conf(topology(kvm)))["totem"]
