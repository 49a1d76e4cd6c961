"""Block exports (render/exports): every rendered node script passes shellcheck and matches
its golden file, values stay data, device paths are stable and distinct; the real
nbd-server serves the rendered config on loopback, and the iSCSI script's targetcli
command lines are checked against a stand-in that accepts only targetcli-fb's syntax."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import pytest
from conftest import example_stacks, require_tool, shellcheck, stack_config, topology_of

from render.exports import gnbd, iscsi, nbd, protocol
from render.script import NodeScript
from spec import SpecError, load_spec
from spec.topology import Topology
from spec.vocabulary import SECRET_KEY_NAMES

SECRETS = SECRET_KEY_NAMES
SCRIPTS = resources.files("render.scripts")
LIB = SCRIPTS.joinpath("lib.sh").read_text()
BODIES = sorted(p.name for p in Path(str(SCRIPTS)).glob("*.sh") if p.name.startswith(("export_", "import_")))
STACK_OF = {"nbd": "local", "iscsi": "globex-prod", "gnbd": "acme-prod"}


def topology(stack: str) -> Topology:
    """The Topology of an example stack, by its name."""
    return topology_of(stack_config(stack))


def node_scripts(topo: Topology) -> list[tuple[str, NodeScript]]:
    """(node, script): each export's server script, then one import per member."""
    out: list[tuple[str, NodeScript]] = []
    for export in topo.exports:
        proto = protocol(export.protocol)
        out.append((export.server, proto.server(topo, export)))
        out += [(m.name, proto.client(topo, export, m)) for m in topo.members]
    return out


CASES = [(stack, node, script) for stack in example_stacks() for node, script in node_scripts(topology(stack))]
CASE_IDS = [f"{stack}:{script.step}-{node}" for stack, node, script in CASES]


# --- shellcheck ------------------------------------------------------------------------


@pytest.mark.parametrize("stack,node,script", CASES, ids=CASE_IDS)
def test_rendered_scripts_pass_shellcheck(stack, node, script):
    # SC2034: create and delete share one set of values, each uses part of them.
    # SC2016: a value is a literal in single quotes by design (render/script.py).
    for text in (script.create, script.delete):
        res = shellcheck(text, "SC2034", "SC2016")
        assert res.returncode == 0, res.stdout


@pytest.mark.parametrize("body", BODIES)
def test_body_files_pass_shellcheck(body):
    # Alone a body misses its header's values (SC2154, SC2153); everything else must
    # hold, including SC2016, which the rendered check above cannot look at.
    res = shellcheck("#!/bin/bash\n" + LIB + "\n" + SCRIPTS.joinpath(body).read_text(), "SC2154", "SC2153")
    assert res.returncode == 0, res.stdout


def test_gnbd_init_scripts_pass_shellcheck():
    topo = topology("acme-prod")
    for export in topo.exports:
        for text in (gnbd.server_init(export), gnbd.client_init(export, gnbd.GNBD.device(topo, export, topo.members[0]))):
            res = shellcheck(text)
            assert res.returncode == 0, res.stdout


# --- golden files ----------------------------------------------------------------------


@pytest.mark.parametrize("stack,node,script", CASES, ids=CASE_IDS)
def test_rendered_scripts_match_golden_files(stack, node, script, golden):
    golden(f"exports/{stack}/{script.step}-{node}.sh", script.create)
    golden(f"exports/{stack}/{script.step}-{node}-delete.sh", script.delete)


# --- values stay data ------------------------------------------------------------------


def hostile_export(proto: str, marker: Path):
    topo = topology(STACK_OF[proto])
    export = next(e for e in topo.exports if e.protocol == proto)
    return topo, dataclasses.replace(export, device=f"$(touch {marker})")


def assignments(script: str) -> str:
    """The header of a rendered script: shebang, set -euo pipefail and the values."""
    head, sep, _ = script.partition(LIB)
    assert sep, "lib.sh not found in the rendered script"
    return head


@pytest.mark.parametrize("proto", sorted(STACK_OF))
def test_a_hostile_device_path_stays_a_value(proto, tmp_path):
    marker = tmp_path / "pwned"
    topo, export = hostile_export(proto, marker)
    script = protocol(proto).server(topo, export)
    for text in (script.create, script.delete):
        subprocess.run(["bash", "-n"], input=text, text=True, check=True)
    res = subprocess.run(
        ["bash", "-c", assignments(script.create) + 'printf %s "$DEVICE"'],
        capture_output=True, text=True, check=True,
    )
    assert res.stdout == export.device
    assert not marker.exists()


def test_a_hostile_device_path_stays_a_value_in_the_gnbd_init_script(tmp_path):
    marker = tmp_path / "pwned"
    _, export = hostile_export("gnbd", marker)
    head = gnbd.server_init(export).partition(gnbd.SERVER_INIT_BODY)[0]
    res = subprocess.run(["bash", "-c", head + 'printf %s "$DEVICE"'], capture_output=True, text=True, check=True)
    assert res.stdout == export.device
    assert not marker.exists()


def test_the_iscsi_script_refuses_a_device_targetcli_would_parse_again(tmp_path):
    marker = tmp_path / "pwned"
    topo, export = hostile_export("iscsi", marker)
    script = iscsi.ISCSI.server(topo, export)
    res = subprocess.run(["bash", "-c", script.create], capture_output=True, text=True, check=False)
    assert res.returncode == 1
    assert "cannot be passed to targetcli" in res.stderr
    assert not marker.exists()


def test_a_device_path_cannot_add_lines_to_the_nbd_config():
    topo = topology("local")
    export = dataclasses.replace(topo.exports[0], device="/dev/x\n[evil]\nexportname = /etc/shadow")
    config = nbd.server_config(export, "/etc/nbd-server/allow")
    assert "exportname = /dev/x\\n[evil]\\nexportname = /etc/shadow" in config.splitlines()
    assert "[evil]" not in config.splitlines()


# --- device paths ----------------------------------------------------------------------


@pytest.mark.parametrize("stack", example_stacks())
def test_device_paths_are_stable_and_distinct(stack):
    topo = topology(stack)
    for member in topo.members:
        paths = [protocol(e.protocol).device(topo, e, member) for e in topo.exports]
        assert len(set(paths)) == len(paths)
        assert paths == [protocol(e.protocol).device(topology(stack), e, member) for e in topology(stack).exports]
    for export in topo.exports:
        assert len({protocol(export.protocol).device(topo, export, m) for m in topo.members}) == 1


def test_device_paths_per_protocol():
    local, globex, acme = topology("local"), topology("globex-prod"), topology("acme-prod")
    second = dataclasses.replace(local.exports[0], name="more", port=10810)
    two_nbd = dataclasses.replace(local, exports=(local.exports[0], second))
    member = local.members[0]
    assert [nbd.NBD.device(two_nbd, e, member) for e in two_nbd.exports] == ["/dev/nbd0", "/dev/nbd1"]
    lun1 = globex.exports[0]
    assert iscsi.ISCSI.device(globex, lun1, globex.members[0]) == (
        "/dev/disk/by-path/ip-10.23.0.11:3260-iscsi-iqn.2007-09.org.gfs2-cluster:globex.prod.lun1-lun-0"
    )
    assert gnbd.GNBD.device(acme, acme.exports[0], acme.members[0]) == "/dev/gnbd/data"


def test_two_gnbd_ports_on_one_server_are_refused_by_the_spec():
    config = stack_config("acme-prod")
    config["storage"]["exports"].append({"name": "more", "protocol": "gnbd", "server": "gnbd1", "sizeGib": 1, "port": 14568})
    with pytest.raises(SpecError, match=r"storage.exports\[1\].port: port 14568: one gnbd_serv"):
        load_spec(config, secrets_set=SECRETS)


def test_iscsi_on_centos5_is_refused_by_the_spec():
    config = stack_config("acme-prod")
    config["storage"]["exports"][0]["protocol"] = "iscsi"
    with pytest.raises(SpecError, match=r"storage.exports\[0\].protocol: iscsi needs generation current"):
        load_spec(config, secrets_set=SECRETS)


# --- systemd units -----------------------------------------------------------------------


def unit_files(tmp_path: Path) -> list[Path]:
    local, globex = topology("local"), topology("globex-prod")
    data, lun1 = local.exports[0], globex.exports[0]
    units = {
        nbd.server_unit_name(data): nbd.server_unit(data),
        nbd.client_unit_name(data): nbd.client_unit(data, nbd.NBD.device(local, data, local.members[0])),
        iscsi.wait_unit_name(lun1): iscsi.wait_unit(lun1, iscsi.by_path_device(globex, lun1), "open-iscsi"),
    }
    for name, text in units.items():
        (tmp_path / name).write_text(text + "\n")
    return [tmp_path / name for name in units]


def test_units_pass_systemd_analyze_verify(tmp_path):
    analyze = require_tool("systemd-analyze")
    for tool in ("nbd-server", "nbd-client", "modprobe"):  # verify wants every Exec binary
        require_tool(tool)
    for unit in unit_files(tmp_path):
        res = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, check=False)
        # verify only warns (exit 0) about lines it ignores: any output is a failure.
        assert res.returncode == 0 and not res.stderr.strip() and not res.stdout.strip(), res.stderr + res.stdout


# --- the real nbd-server -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sparse_disk(directory: Path, size: int) -> Path:
    """A file the nbd user may open as the config says (group disk), like a raw disk."""
    disk = directory / "disk.img"
    with disk.open("wb") as f:
        f.truncate(size)
    shutil.chown(disk, group="disk")
    disk.chmod(0o660)
    return disk


def start_nbd_server(config: Path, pid_file: Path) -> int:
    # Daemonized as in its unit: in the foreground (-d) it would serve a single client.
    subprocess.run([require_tool("nbd-server"), "-C", str(config), "-p", str(pid_file)], check=True)
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, "nbd-server wrote no pid file"
        time.sleep(0.1)
    return int(pid_file.read_text())


def nbdinfo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("nbdinfo"), *args], capture_output=True, text=True, check=False)


def test_nbd_server_serves_the_rendered_config_to_the_allow_list_only():
    if os.geteuid() != 0:
        pytest.fail("nbd-server changes to user nbd, group disk as the config says: run as root")
    topo = topology("local")
    export = next(e for e in topo.exports if e.protocol == "nbd")
    # Not tmp_path: user nbd must reach the disk, and pytest's base directory is 0700.
    workdir = Path(tempfile.mkdtemp(prefix="gfs2-nbd-"))
    workdir.chmod(0o755)
    port = free_port()
    loopback = dataclasses.replace(
        export, server_address=ipaddress.IPv4Address("127.0.0.1"), device=str(sparse_disk(workdir, 64 << 20)), port=port
    )
    local_member = dataclasses.replace(topo.members[0], address=ipaddress.IPv4Address("127.0.0.1"))
    allow, config = workdir / "allow", workdir / "config"
    allow.write_text(nbd.allow_list(dataclasses.replace(topo, members=(local_member,))) + "\n")
    config.write_text(nbd.server_config(loopback, str(allow)) + "\n")
    uri = f"nbd://127.0.0.1:{port}/{export.name}"
    pid = start_nbd_server(config, workdir / "pid")
    try:
        listing = nbdinfo("--list", f"nbd://127.0.0.1:{port}")
        assert listing.returncode == 0 and f'export="{export.name}"' in listing.stdout, listing.stderr
        assert nbdinfo("--size", uri).stdout.strip() == str(64 << 20)
        assert nbdinfo("--can", "flush", uri).returncode == 0
        assert nbdinfo("--can", "fua", uri).returncode == 0
        assert nbdinfo("--is", "readonly", uri).returncode == 2
        # Writes reach the disk itself (no copy-on-write file).
        payload = workdir / "payload"
        payload.write_bytes(os.urandom(1 << 20))
        subprocess.run([require_tool("nbdcopy"), "--flush", str(payload), uri], check=True)
        assert Path(loopback.device).read_bytes()[: 1 << 20] == payload.read_bytes()
        # The stack's own allow-list (its members, not 127.0.0.1), read on the next
        # connection by the same running server: refused.
        allow.write_text(nbd.allow_list(topo) + "\n")
        refused = nbdinfo("--size", uri)
        assert refused.returncode != 0 and "policy" in refused.stderr, refused.stderr
    finally:
        os.kill(pid, 15)
        shutil.rmtree(workdir, ignore_errors=True)


# --- iSCSI: targetcli command lines against a stand-in ----------------------------------

# Accepts exactly the command lines of targetcli-fb 2.1.53's ui_command_* signatures and
# mirrors their effect in a fake configfs tree, the way the kernel shows LIO's state.
FAKE_TARGETCLI = r'''
import json, os, re, shutil, sys
root, save_file = os.environ["FAKE_CONFIGFS"], os.environ["FAKE_SAVE_FILE"]
words = " ".join(sys.argv[1:]).split()  # targetcli parses the joined line again
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(" ".join(words) + "\n")
path, cmd, args = (words[0], words[1], words[2:]) if words[0].startswith("/") else ("/", words[0], words[1:])
pos = [a for a in args if "=" not in a]
kw = dict(a.split("=", 1) for a in args if "=" in a)
m = re.fullmatch(r"/iscsi/([^/]+)/tpg1(/portals|/luns|/acls)?(?:/([^/]+))?", path)
tpg = m and f"{root}/iscsi/{m.group(1)}/tpgt_1"

def put(p, text):
    os.makedirs(os.path.dirname(p), exist_ok=True)
    open(p, "w").write(text + "\n")

def fail():
    sys.exit(f"fake targetcli: not a targetcli-fb command line: {' '.join(words)}")

if path == "/backstores/block" and cmd == "create" and not pos and set(kw) == {"name", "dev"}:
    put(f"{root}/core/iblock_0/{kw['name']}/udev_path", kw["dev"])
elif path == "/backstores/block" and cmd == "delete" and len(pos) == 1 and not kw:
    shutil.rmtree(f"{root}/core/iblock_0/{pos[0]}")
elif path == "/iscsi" and cmd == "create" and len(pos) == 1 and not kw:
    t = f"{root}/iscsi/{pos[0]}/tpgt_1"
    os.makedirs(f"{t}/np/0.0.0.0:3260")  # targetcli's default portal
    os.makedirs(f"{t}/lun")
    os.makedirs(f"{t}/acls")
    put(f"{t}/enable", "1")
    put(f"{t}/attrib/generate_node_acls", "0")
elif path == "/iscsi" and cmd == "delete" and len(pos) == 1 and not kw:
    shutil.rmtree(f"{root}/iscsi/{pos[0]}")
elif m and m.group(2) == "/portals" and cmd in ("create", "delete") and len(pos) == 2 and not kw:
    (os.makedirs if cmd == "create" else os.rmdir)(f"{tpg}/np/{pos[0]}:{int(pos[1])}")
elif m and m.group(2) == "/luns" and cmd == "create" and len(pos) == 1 and kw == {"lun": "0", "add_mapped_luns": "false"}:
    assert os.path.isdir(f"{root}/core/iblock_0/{pos[0].rsplit('/', 1)[1]}")
    os.makedirs(f"{tpg}/lun/lun_0")
elif m and m.group(2) == "/acls" and not m.group(3) and cmd == "create" and len(pos) == 1 and kw == {"add_mapped_luns": "false"}:
    os.makedirs(f"{tpg}/acls/{pos[0]}")
elif m and m.group(2) == "/acls" and not m.group(3) and cmd == "delete" and len(pos) == 1 and not kw:
    shutil.rmtree(f"{tpg}/acls/{pos[0]}")
elif m and m.group(3) and cmd == "create" and not pos and kw == {"mapped_lun": "0", "tpg_lun_or_backstore": "0"}:
    os.makedirs(f"{tpg}/acls/{m.group(3)}/lun_0")
elif m and not m.group(2) and cmd == "set" and pos == ["attribute"] and len(kw) == 1:
    (name, value), = kw.items()
    put(f"{tpg}/attrib/{name}", value)
elif m and not m.group(2) and cmd == "enable" and not args:
    put(f"{tpg}/enable", "1")
elif path == "/" and cmd == "saveconfig" and not args:
    targets = sorted(os.listdir(f"{root}/iscsi")) if os.path.isdir(f"{root}/iscsi") else []
    json.dump({"targets": [{"wwn": t} for t in targets]}, open(save_file, "w"))
else:
    fail()
'''

FAKE_SYSTEMCTL = r"""#!/bin/bash
# is-enabled / enable, remembered as files; the rest only logged.
echo "systemctl $*" >>"$FAKE_LOG"
unit=${*: -1}
case $1 in
  is-enabled) [[ -e $FAKE_STATE/enabled-$unit ]] ;;
  enable) touch "$FAKE_STATE/enabled-$unit" ;;
esac
"""


@pytest.fixture
def lio(tmp_path, monkeypatch):
    """A stand-in LIO: fake configfs, targetcli and systemctl, a block device node."""
    if os.geteuid() != 0:
        pytest.fail("the iSCSI check makes a block device node: run as root")
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    (bin_dir / "targetcli").write_text(f"#!{sys.executable}\n{FAKE_TARGETCLI}")
    (bin_dir / "systemctl").write_text(FAKE_SYSTEMCTL)
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    disk = tmp_path / "disk"
    os.mknod(disk, stat.S_IFBLK | 0o600, os.makedev(7, 250))
    monkeypatch.setattr(iscsi, "CONFIGFS", str(tmp_path / "configfs"))
    monkeypatch.setitem(iscsi.DISTROS, "rhel9", iscsi.Distro("target", str(tmp_path / "saveconfig.json"), "iscsi"))
    log = tmp_path / "log"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_CONFIGFS": str(tmp_path / "configfs"),
        "FAKE_SAVE_FILE": str(tmp_path / "saveconfig.json"),
        "FAKE_LOG": str(log),
        "FAKE_STATE": str(state),
    }
    topo = topology("globex-prod")
    export = dataclasses.replace(topo.exports[0], device=str(disk))

    def run(script_text: str) -> tuple[list[str], list[str]]:
        """Runs a script; returns its output lines and the commands it ran."""
        before = log.read_text().splitlines() if log.exists() else []
        res = subprocess.run(["bash", "-c", script_text], env=env, capture_output=True, text=True, check=False)
        assert res.returncode == 0, res.stderr
        return res.stdout.splitlines(), log.read_text().splitlines()[len(before):]

    return topo, export, run


def test_iscsi_target_is_made_with_targetcli_fb_command_lines(lio):
    topo, export, run = lio
    iqn, ui = topo.names.target_iqn(export.name), f"/iscsi/{topo.names.target_iqn(export.name)}/tpg1"
    initiators = [topo.names.initiator_iqn(m.name) for m in topo.members]
    _, commands = run(iscsi.ISCSI.server(topo, export).create)
    assert commands == [
        "systemctl is-enabled --quiet target",
        "systemctl enable --quiet target",
        f"/backstores/block create name={export.name} dev={export.device}",
        f"/iscsi create {iqn}",
        f"{ui}/portals delete 0.0.0.0 3260",
        f"{ui}/portals create {export.server_address} {export.port}",
        f"{ui}/luns create /backstores/block/{export.name} lun=0 add_mapped_luns=false",
        *[
            line
            for initiator in initiators
            for line in (
                f"{ui}/acls create {initiator} add_mapped_luns=false",
                f"{ui}/acls/{initiator} create mapped_lun=0 tpg_lun_or_backstore=0",
            )
        ],
        "saveconfig",
    ]


def test_iscsi_target_second_run_changes_nothing(lio):
    topo, export, run = lio
    script = iscsi.ISCSI.server(topo, export).create
    run(script)
    output, commands = run(script)
    # One status line, then the result line every node script ends with.
    assert len(output) == 2 and "unchanged" in output[0]
    assert output[1].endswith("]: result: unchanged")
    assert commands == ["systemctl is-enabled --quiet target"]


def test_iscsi_target_drops_the_acl_of_a_removed_member(lio):
    topo, export, run = lio
    run(iscsi.ISCSI.server(topo, export).create)
    fewer = dataclasses.replace(topo, members=topo.members[:-1])
    _, commands = run(iscsi.ISCSI.server(fewer, export).create)
    gone = topo.names.initiator_iqn(topo.members[-1].name)
    assert commands[-2:] == [f"/iscsi/{topo.names.target_iqn(export.name)}/tpg1/acls delete {gone}", "saveconfig"]


def test_iscsi_target_delete_removes_target_and_backstore_once(lio):
    topo, export, run = lio
    script = iscsi.ISCSI.server(topo, export)
    run(script.create)
    _, commands = run(script.delete)
    assert commands == [
        f"/iscsi delete {topo.names.target_iqn(export.name)}",
        f"/backstores/block delete {export.name}",
        "saveconfig",
    ]
    output, commands = run(script.delete)
    assert len(output) == 2 and "already gone" in output[0] and commands == []
    assert output[1].endswith("]: result: unchanged")
    saved = json.loads(Path(iscsi.DISTROS["rhel9"].save_file).read_text())
    assert saved == {"targets": []}
