"""The current generation's membership steps (roster, join, per-member fence device) and
the journals step: shellcheck, and what a change of the member count re-runs. A member
added or removed re-runs every roster (a new nodelist) but no other member's join or fence
device: those do not restart or touch the members that stay."""

from __future__ import annotations

import copy
import shlex
import subprocess
import time

import pytest

from conftest import shellcheck, stack_config
from render import gfs2, host
from render.generations.current import CURRENT
from render.script import values_of
from spec import build, load_spec
from spec.topology import Topology
from spec.vocabulary import SECRET_KEY_NAMES

pytestmark = pytest.mark.usefixtures("local_key_files")


def local(count: int) -> Topology:
    config = copy.deepcopy(stack_config("local"))
    config["members"]["count"] = count
    return build(load_spec(config))


def scripts(topo: Topology) -> dict[str, str]:
    out = {"roster": CURRENT.roster(topo).create, "join": CURRENT.membership(topo).create}
    out |= {f"fence-{m.name}": CURRENT.fence_device(topo, m).create for m in topo.members}
    out |= {f"journals-{fs.fs_name}": gfs2.journals(fs).create for fs in topo.filesystems}
    return out


STEPS = {
    "roster": CURRENT.roster,
    "join": CURRENT.membership,
    "fence-m1": lambda topo: CURRENT.fence_device(topo, topo.members[0]),
    "journals-shared": lambda topo: gfs2.journals(topo.filesystems[0]),
}
# SC2034: create and delete share one set of values, each uses part of them.
# SC2016: the stage's cib tool is a Python program quoted as one value.
EXCLUDED = ("SC2034", "SC2016")


@pytest.mark.parametrize("name", STEPS)
def test_rendered_steps_pass_shellcheck(name):
    script = STEPS[name](local(3))
    for text in (script.create, script.delete):
        res = shellcheck(text, *EXCLUDED)
        assert res.returncode == 0, res.stdout


def test_a_fourth_member_reruns_the_rosters_and_the_journals_but_no_join_or_fence_device():
    three, four = scripts(local(3)), scripts(local(4))
    assert three["roster"] != four["roster"]
    assert three["join"] == four["join"], "a join that changes with the member count restarts nothing but re-runs"
    for m in ("m1", "m2", "m3"):
        assert three[f"fence-{m}"] == four[f"fence-{m}"], f"{m}'s fence device would be re-applied"
    assert values_of(four["journals-shared"])["JOURNALS"] == "5"


def test_the_roster_names_every_node_id_of_its_nodelist():
    topo = local(4)
    values = values_of(CURRENT.roster(topo).create)
    assert values["NODEIDS"].split() == [str(m.nodeid) for m in topo.members]
    assert [line.split(":")[1].strip() for line in values["COROSYNC_CONF"].splitlines()
            if line.strip().startswith("nodeid:")] == values["NODEIDS"].split()
    assert values["TWO_NODE"] == "0"
    assert values_of(CURRENT.roster(local(2)).create)["TWO_NODE"] == "1"


def test_the_first_members_fence_device_waits_for_the_first_member_only():
    topo = local(3)
    for m in topo.members:
        values = values_of(CURRENT.fence_device(topo, m).create)
        assert values["MEMBERS"] == "1" and values["WAIT_FOR"] == ""
        assert f'value="{m.name}"' in values["STAGE"]


# --- the hypervisor's boot hook (render/host.py boot_hook_text) ------------------------


@pytest.mark.parametrize("stack", ["local", "globex-prod"])
def test_the_boot_hook_and_its_installer_pass_shellcheck(stack):
    topo = local(3) if stack == "local" else build(load_spec(stack_config(stack), secrets_set=SECRET_KEY_NAMES))
    hv = topo.member_hypervisor
    for text in (host.boot_hook_text(topo, hv, True), host.boot_hook(topo, hv, True).create):
        res = shellcheck(text, *EXCLUDED)
        assert res.returncode == 0, res.stdout


@pytest.mark.parametrize("args", [("g2-other-dev-m1", "prepare", "begin"), ("g2-local-dev-m1", "started", "begin"),
                                  ("g2-local-dev-m1", "release", "end")])
def test_the_boot_hook_leaves_other_domains_and_other_events_alone(tmp_path, args):
    """Run for real: it must exit 0 at once, touching nothing (no log, no rule, no lock)."""
    topo = local(3)
    hook = tmp_path / "hook"
    hook.write_text(host.boot_hook_text(topo, topo.member_hypervisor, True).replace(topo.names.host_dir, str(tmp_path / "dir")))
    p = subprocess.run(["bash", str(hook), *args], input="<domain/>", capture_output=True, text=True, timeout=10)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    assert not (tmp_path / "dir").exists()


def test_the_boot_hook_restores_the_guard_before_the_domain_and_fence_virtd_after():
    topo = local(3)
    text = host.boot_hook_text(topo, topo.member_hypervisor, True)
    guard, listener = host.lab_guard(topo).create, host.fence_listener(topo, topo.member_hypervisor).create
    assert shlex.quote(guard) in text and shlex.quote(listener) in text
    # The guard in the hook's own call (before libvirt starts the domain), fence_virtd in
    # the background: it connects to libvirt, which is waiting for the hook.
    assert text.index(shlex.quote(guard)) < text.index(") 9>\"$lock\" </dev/null >>\"$log\" 2>&1\n")
    assert text.rstrip().endswith(') 9>"$lock" </dev/null >>"$log" 2>&1 &\nexit 0')
    assert "fence_xvm.key" in text and "BEGIN" not in text  # the key is read from its file, not carried


def test_a_daemon_a_boot_step_starts_does_not_keep_the_hooks_lock(tmp_path, monkeypatch):
    """libvirtd waits for its hook: a fence_virtd that inherited the lock held it for good,
    and the next domain's hook, and with it libvirtd, waited forever (seen on a restart)."""
    from render.script import NodeScript

    pids = tmp_path / "pids"
    daemon = NodeScript("daemon", f"setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! >>{pids}", "")
    monkeypatch.setattr(host, "lab_guard", lambda topo: daemon)
    monkeypatch.setattr(host, "fence_listener", lambda topo, hv: daemon)
    topo = local(3)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "fence_xvm.key").write_text("k")
    hook = tmp_path / "hook"
    hook.write_text(host.boot_hook_text(topo, topo.member_hypervisor, True).replace(topo.names.host_dir, str(tmp_path / "dir")))
    try:
        for guest in ("m1", "m2"):
            p = subprocess.run(["bash", str(hook), topo.names.domain(guest), "prepare", "begin", "-"], input="<domain/>",
                               capture_output=True, text=True, timeout=30)
            assert p.returncode == 0, p.stderr
        # Both steps for both domains, the listener's in the background.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(pids.read_text().split() if pids.exists() else []) < 4:
            time.sleep(0.1)
        assert len(pids.read_text().split()) == 4
        free = subprocess.run(["flock", "-w", "10", str(tmp_path / "dir" / "boot-hook.lock"), "true"], timeout=30)
        assert free.returncode == 0, "a daemon started by the hook holds its lock"
    finally:
        for pid in pids.read_text().split() if pids.exists() else []:
            subprocess.run(["kill", pid], check=False)
