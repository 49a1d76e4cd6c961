"""Changing a running cluster through `pulumi up` of an edited stack, on real guests (TCG)
through the real engine: a member added (members.count 3 -> 4), then removed (4 -> 3);
then a reboot of the hypervisor, after which the cluster must come back by itself and
fence again.

The stack is `local`, run from its copy in .state/stacks/ (what tools/stack.sh runs), so
the edits stay out of the tracked stacks/Pulumi.local.yaml. During each operation a
writer on m2, a member the operation does not touch, appends and fsyncs a line every
0.2 s: no write may fail, and the longest one is measured. The data written before stays
the same, the untouched members are not restarted (corosync and pacemaker keep their
PIDs, GFS2 its mount), and the next `pulumi up` changes nothing.

Its own pytest session (make e2e-day2): the tests run in file order against one cluster
that is destroyed at the end, failures included.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from live_stack import ROOT, Cluster, Engine, Guest, clean_start, cluster_of, crm_started_on, leftovers, purge, record
from live_stack import read_topology, sh, sha256_on, virsh
from render.host import lab_guard

pytestmark = pytest.mark.e2e

STACK = "local"
FS_CLONE = "fs-shared-clone"
DATA = "day2-data.bin"
WRITER = r"""
import json, os, sys, time
path, stop = sys.argv[1], sys.argv[2]
writes = failed = 0
longest = 0.0
errors = []
while not os.path.exists(stop):
    t0 = time.monotonic()
    try:
        with open(path, "a") as f:
            f.write(f"{writes} {time.time():.3f}\n")
            f.flush()
            os.fsync(f.fileno())
        writes += 1
        longest = max(longest, time.monotonic() - t0)
    except OSError as e:
        failed += 1
        errors.append(str(e))
    time.sleep(0.2)
print(json.dumps({"writes": writes, "failed": failed, "longest_write_s": round(longest, 3), "errors": errors[:5]}))
"""


class Writer:
    """WRITER on a guest for the length of a `with` block; its figures after."""

    def __init__(self, guest: Guest, path: str):
        self.guest, self.path, self.stop = guest, path, f"/run/day2-writer-{time.time_ns()}.stop"
        self.result: dict = {}

    def __enter__(self) -> "Writer":
        def run():
            out = self.guest.run(f"python3 - {self.path} {self.stop}", stdin=WRITER.encode(), timeout=3600)
            self.result = json.loads(out.strip().splitlines()[-1])

        self.thread = threading.Thread(target=run)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.guest.run(f"touch {self.stop}")
        self.thread.join(timeout=120)
        assert self.result, "the writer gave no figures"


def set_member_count(engine: Engine, count: int) -> None:
    """Edit the stack as a user would, in the copy the engine runs from."""
    path = Path(engine.config_file)
    config = yaml.safe_load(path.read_text())
    config["config"]["gfs2-cluster:members"]["count"] = count
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def members_of(engine: Engine, count: int) -> list[Guest]:
    """The guests of the stack as edited (the topology of its work copy)."""
    topo = read_topology(Path(engine.config_file))
    assert len(topo.members) == count
    key = ROOT / topo.spec.ssh.private_key_file
    return [Guest(m.name, str(m.address), topo.guest(m.name).domain, key) for m in topo.members]


def untouched(guest: Guest, mount_point: str) -> str:
    """What a restart of the cluster stack or a remount would change."""
    return guest.run(
        "systemctl show -p MainPID --value corosync pacemaker; pgrep -x dlm_controld; "
        f"awk '$5 == \"{mount_point}\" {{print \"mount id\", $1}}' /proc/self/mountinfo")


def quorum(guest: Guest) -> dict[str, str]:
    out = guest.run("corosync-quorumtool -s", check=False)
    return dict(re.findall(r"^(Expected votes|Total votes|Quorum|Flags):\s+(.*?)\s*$", out, re.M))


def fencing_history(guest: Guest) -> str:
    return guest.run("stonith_admin --history '*' 2>&1 || true")


def journals(guest: Guest) -> int:
    out = guest.run("gfs2_edit -p jindex /dev/vg_shared/lv_gfs2")
    return len(re.findall(r"File +journal[0-9]+$", out, re.M))


def assert_second_up_changes_nothing(engine: Engine) -> dict:
    run = engine.up()
    assert run.changed() == {} and run.commands_run() == [], f"the next up changed something: {run.changed()}"
    return {"next_up_seconds": round(run.seconds, 1), "next_up_commands": 0}


@pytest.fixture(scope="module")
def cluster():
    engine = clean_start(Engine(STACK))
    topo = engine.topology()
    try:
        run = engine.up()
        c = cluster_of(engine, run)
        m1 = c.members[0]
        m1.run(f"head -c 16M /dev/urandom >{c.mount_point}/{DATA}; sync")
        yield c
    finally:
        if engine.resources():
            engine.destroy()
        # m4's domain too, should the removal have failed before deleting it.
        topo4 = read_topology(Path(engine.config_file)) if Path(engine.config_file).exists() else topo
        purge(topo4)
        purge(topo)


def test_adding_a_member_joins_it_and_restarts_no_other(cluster: Cluster):
    engine, m1, m2 = cluster.engine, cluster.members[0], cluster.members[1]
    data = sha256_on(m1, f"{cluster.mount_point}/{DATA}")
    before = {g.name: untouched(g, cluster.mount_point) for g in cluster.members}
    assert journals(m1) == 4  # members + 1 at mkfs
    set_member_count(engine, 4)
    with Writer(m2, f"{cluster.mount_point}/writer-add.log") as writer:
        run = engine.up()
    assert run.result == "succeeded", run.result
    grown = members_of(engine, 4)
    m4 = grown[-1]
    assert crm_started_on(m1, FS_CLONE) == {"m1", "m2", "m3", "m4"}
    assert "is running on" in m1.run("crm_resource --locate --resource fence-m4 2>&1 || true")
    assert quorum(m1) == {"Expected votes": "4", "Total votes": "4", "Quorum": "3", "Flags": "Quorate"}, quorum(m1)
    assert journals(m1) == 5, "gfs2_jadd gave the file system a journal per member and a spare"
    assert sha256_on(m4, f"{cluster.mount_point}/{DATA}") == data
    assert {g.name: untouched(g, cluster.mount_point) for g in cluster.members} == before, "a member was restarted"
    assert writer.result["failed"] == 0, writer.result
    assert fencing_history(m1).count("reboot") == 0, fencing_history(m1)
    figures = {"up_seconds": round(run.seconds, 1), **writer.result, **assert_second_up_changes_nothing(engine)}
    record("day2-add-member", figures)


def test_removing_a_member_lets_it_leave_cleanly(cluster: Cluster):
    engine, m1, m2 = cluster.engine, cluster.members[0], cluster.members[1]
    data = sha256_on(m1, f"{cluster.mount_point}/{DATA}")
    before = {g.name: untouched(g, cluster.mount_point) for g in cluster.members}
    m4 = members_of(engine, 4)[-1]
    set_member_count(engine, 3)
    with Writer(m2, f"{cluster.mount_point}/writer-remove.log") as writer:
        run = engine.up()
    assert run.result == "succeeded", run.result
    # Every fact first, then the checks: one run shows all that is wrong.
    facts = {
        "domains": virsh("list", "--all", "--name").stdout.split(),
        "mounted on": sorted(crm_started_on(m1, FS_CLONE)),
        "crm_mon nodes": m1.run("crm_mon -1 | sed -n '/Node List/,/^$/p'"),
        "cib nodes": m1.run("cibadmin --query --scope nodes"),
        "corosync nodelist": m1.run("corosync-cmapctl -b nodelist.node | grep name"),
        "peer cache": m1.run("crm_node --list"),
        "quorum": quorum(m1),
        "fencing": fencing_history(m1),
        "fence-m4": m1.run("crm_resource --locate --resource fence-m4 2>&1 || true"),
    }
    print(f"e2e removal facts: {facts}")
    assert m4.domain not in facts["domains"], "the removed member's guest is still there"
    assert facts["mounted on"] == ["m1", "m2", "m3"], facts
    assert "m4" not in facts["crm_mon nodes"] + facts["cib nodes"] + facts["corosync nodelist"] + facts["peer cache"], facts
    assert facts["quorum"] == {"Expected votes": "3", "Total votes": "3", "Quorum": "2", "Flags": "Quorate"}, facts
    assert facts["fencing"].count("reboot") == 0, f"the removed member was fenced: {facts}"
    assert "is running on" not in facts["fence-m4"], facts
    assert sha256_on(m2, f"{cluster.mount_point}/{DATA}") == data
    assert {g.name: untouched(g, cluster.mount_point) for g in cluster.members} == before, "a member was restarted"
    assert writer.result["failed"] == 0, writer.result
    figures = {"up_seconds": round(run.seconds, 1), **writer.result, **assert_second_up_changes_nothing(engine)}
    record("day2-remove-member", figures)


def _power_loss(topo) -> None:
    """What a hypervisor's reboot takes away: its guests stop at once, the tenant's
    network (bridge, libvirt's rules), lab guard rules, fence_virtd and its port rule go,
    and /run is empty again (libvirt autostarts once per boot by its markers there)."""
    names = topo.names
    for g in topo.guests:
        virsh("destroy", g.domain)
    pidfile = Path(names.host_dir) / "fence_virtd.pid"
    if pidfile.exists():
        os.kill(int(pidfile.read_text()), signal.SIGTERM)
        pidfile.unlink()
    sh("iptables", "-D", "INPUT", "-p", "udp", "--dport", str(topo.fencing.port), "!", "-i", topo.bridge, "-j", "DROP",
       check=False)
    virsh("net-destroy", names.network)
    sh("bash", "-c", lab_guard(topo).delete)
    for marker in ("/run/libvirt/qemu/autostarted", "/run/libvirt/network/autostarted"):
        Path(marker).unlink(missing_ok=True)


def _restart_libvirtd() -> None:
    """The boot's libvirtd: the one tools/libvirtd.sh started is ended by its PID, and
    started again the same way."""
    pid = int(Path("/run/libvirtd.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.5)
    sh(str(ROOT / "tools" / "libvirtd.sh"))


def _wait(what: str, seconds: float, done) -> float:
    t0 = time.monotonic()
    while not done():
        assert time.monotonic() - t0 < seconds, f"timed out after {seconds} s waiting for {what}"
        time.sleep(5)
    return time.monotonic() - t0


def test_after_a_hypervisor_reboot_the_cluster_comes_back_by_itself_and_fences_again(cluster: Cluster):
    engine, m1 = cluster.engine, cluster.members[0]
    topo = read_topology(Path(engine.config_file))
    data = sha256_on(m1, f"{cluster.mount_point}/{DATA}")
    _power_loss(topo)
    gone = leftovers(topo)
    assert not [f for f in gone if f.startswith(("bridge", "rule", "process"))], gone
    t0 = time.monotonic()
    _restart_libvirtd()
    guard = lambda: all(f"rule {p}:" in " ".join(leftovers(topo)) for p in (4242, 4243))  # noqa: E731
    back = {"guard_s": _wait("the lab guard rules", 300, guard)}
    back["fence_virtd_s"] = _wait("the tenant's fence_virtd", 300,
                                  lambda: any(f.startswith("process") for f in leftovers(topo)))
    back["mounted_everywhere_s"] = _wait("GFS2 on every member", 900,
                                         lambda: crm_started_on(m1, FS_CLONE) == {"m1", "m2", "m3"})
    assert sha256_on(cluster.members[2], f"{cluster.mount_point}/{DATA}") == data
    # Fencing works again: pacemaker reboots m3 through the tenant's fence_virtd.
    m1.run("stonith_admin --reboot m3 --timeout 120", timeout=300)
    back["refenced_rejoined_s"] = _wait("m3 to rejoin after fencing", 900,
                                        lambda: crm_started_on(m1, FS_CLONE) == {"m1", "m2", "m3"}
                                        and "m3" in fencing_history(m1))
    assert "reboot of m3" in fencing_history(m1) and "successful" in fencing_history(m1), fencing_history(m1)
    back["total_s"] = round(time.monotonic() - t0, 1)
    record("day2-host-reboot", {**{k: round(v, 1) for k, v in back.items()}, **assert_second_up_changes_nothing(engine)})
