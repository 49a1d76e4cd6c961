"""Changing a running cluster through `pulumi up` of an edited stack, on real guests (TCG)
through the real engine: a member added (members.count 3 -> 4), then removed (4 -> 3),
the shared disk grown (storage.exports[0].sizeGib 4 -> 6), the members resized (vcpu
1 -> 2, memoryMib 1024 -> 1280); then a reboot of the hypervisor, after which the cluster
must come back by itself and fence again.

The stack is `local`, run from its copy in .state/stacks/ (what tools/stack.sh runs), so
the edits stay out of the tracked stacks/Pulumi.local.yaml. During each operation a
writer on m2, a member the operation does not touch, appends and fsyncs a line every
0.2 s: no write may fail, and the longest one is measured (growing NBD storage and
resizing take every member out in turn: there a writer runs on each, holding off in its
member's standby, or ending when its member leaves). The data written before stays
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
import json, os, subprocess, sys, time
path, stop, mode = sys.argv[1], sys.argv[2], sys.argv[3]
node = os.uname().nodename.split(".")[0]
writes = failed = 0
longest = paused = 0.0
errors = []
left = False


# Like an application pacemaker runs here: it holds off in the member's standby
# (mode standby), or ends when the member leaves the cluster (mode leave).
def in_standby():
    q = subprocess.run(["crm_attribute", "--node", node, "--name", "standby", "--lifetime", "reboot",
                        "--query", "--quiet"], capture_output=True, text=True)
    return q.stdout.strip() == "on"


def leaving():
    return subprocess.run(["systemctl", "is-active", "--quiet", "pacemaker"]).returncode != 0


while not os.path.exists(stop):
    if mode == "leave" and leaving():
        left = True
        break
    if mode == "standby" and in_standby():
        t0 = time.monotonic()
        while in_standby() and not os.path.exists(stop):
            time.sleep(0.2)
        paused += time.monotonic() - t0
        continue
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
print(json.dumps({"writes": writes, "failed": failed, "longest_write_s": round(longest, 3),
                  "paused_in_standby_s": round(paused, 1), "ended_as_member_left": left, "errors": errors[:5]}))
"""


class Writer:
    """WRITER on a guest for the length of a `with` block; its figures after. MODE
    "standby": it holds off while its member is in standby (GFS2 unmounted there);
    "leave": it ends when its member leaves the cluster."""

    def __init__(self, guest: Guest, path: str, mode: str = "-"):
        self.guest, self.path, self.stop = guest, path, f"/run/day2-writer-{time.time_ns()}.stop"
        self.mode = mode
        self.result: dict = {}

    def __enter__(self) -> "Writer":
        def run():
            out = self.guest.run(f"python3 - {self.path} {self.stop} {self.mode}", stdin=WRITER.encode(), timeout=3600)
            self.result = json.loads(out.strip().splitlines()[-1])

        self.thread = threading.Thread(target=run)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.guest.run(f"touch {self.stop}", check=False)
        self.thread.join(timeout=120)
        assert self.result, "the writer gave no figures"


def edit_stack(engine: Engine, change) -> None:
    """Edit the stack as a user would, in the copy the engine runs from: CHANGE gets its
    config (key -> value, the project's prefix included)."""
    path = Path(engine.config_file)
    stack = yaml.safe_load(path.read_text())
    change(stack["config"])
    path.write_text(yaml.safe_dump(stack, sort_keys=False))


def set_member_count(engine: Engine, count: int) -> None:
    edit_stack(engine, lambda c: c["gfs2-cluster:members"].update(count=count))


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


def set_export_size(engine: Engine, size_gib: int) -> None:
    edit_stack(engine, lambda c: c["gfs2-cluster:storage"]["exports"][0].update(sizeGib=size_gib))


def sizes(guest: Guest, mount_point: str) -> dict[str, int]:
    out = guest.run("blockdev --getsize64 /dev/nbd0 /dev/vg_shared/lv_gfs2; "
                    f"df -B1 --output=size {mount_point} | tail -1")
    device, lv, fs = (int(v) for v in out.split())
    return {"device": device, "lv": lv, "fs": fs}


def cluster_stack(guest: Guest) -> str:
    """What a restart of corosync or pacemaker would change (standby restarts neither)."""
    return guest.run("systemctl show -p MainPID --value corosync pacemaker")


class Rolling:
    """For an operation that takes the members out one at a time: a writer on every
    member (MODE as Writer's) and, every 2 s, how many members have GFS2 mounted (asked
    of the first member that answers)."""

    def __init__(self, cluster: Cluster, label: str, mode: str):
        self.cluster = cluster
        self.writers = [Writer(g, f"{cluster.mount_point}/writer-{label}-{g.name}.log", mode) for g in cluster.members]
        self.mounted: list[int] = []
        self.done = threading.Event()

    def _watch(self) -> None:
        while not self.done.wait(2):
            answers = (crm_started_on(g, FS_CLONE) for g in self.cluster.members)
            self.mounted.append(len(next((a for a in answers if a), set())))

    def __enter__(self) -> "Rolling":
        for w in self.writers:
            w.__enter__()
        self.watcher = threading.Thread(target=self._watch)
        self.watcher.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.watcher.join()
        for w in self.writers:
            w.__exit__()

    def facts(self) -> dict:
        return {"writers": {w.guest.name: w.result for w in self.writers},
                "fewest mounted": min(self.mounted, default=None), "samples": len(self.mounted)}

    def check(self, facts: dict) -> None:
        n = len(self.cluster.members)
        assert facts["fewest mounted"] is not None and facts["fewest mounted"] >= n - 1, f"GFS2 left more than one member: {facts}"
        assert all(w.result["failed"] == 0 for w in self.writers), facts

    def figures(self) -> dict:
        return {"writers": {w.guest.name: {k: v for k, v in w.result.items() if k != "errors"} for w in self.writers},
                "fewest_members_mounted": min(self.mounted, default=None)}


def test_growing_the_shared_disk_grows_gfs2_online_one_member_at_a_time(cluster: Cluster):
    """NBD: each member in turn leaves pacemaker's resources (standby) while its import
    reconnects at the new size; GFS2 stays mounted on the others. A writer on every
    member holds off while its own member is in standby, as a pacemaker-run application
    would, and must never fail a write."""
    engine, m1 = cluster.engine, cluster.members[0]
    data = sha256_on(m1, f"{cluster.mount_point}/{DATA}")
    before = {g.name: sizes(g, cluster.mount_point) for g in cluster.members}
    stacks = {g.name: cluster_stack(g) for g in cluster.members}
    set_export_size(engine, 6)
    with Rolling(cluster, "grow", "standby") as rolling:
        run = engine.up()
    assert run.result == "succeeded", run.result
    # The other members' df follows the grown file system at their next statfs sync
    # (GFS2's statfs_quantum, 30 s); their allocations see the new resource groups at once.
    t0, after = time.monotonic(), {}
    while time.monotonic() - t0 < 120:
        after = {g.name: sizes(g, cluster.mount_point) for g in cluster.members}
        if all(a["fs"] > before[n]["fs"] + 1024**3 for n, a in after.items()):
            break
        time.sleep(5)
    df_lag = round(time.monotonic() - t0, 1)
    facts = {"before": before, "after": after, "df_caught_up_s": df_lag, **rolling.facts(),
             "fencing": fencing_history(m1), "quorum": quorum(m1)}
    print(f"e2e growth facts: {facts}")
    assert all(a["device"] == 6 * 1024**3 for a in after.values()), facts
    assert all(a["lv"] > before[n]["lv"] + 1024**3 for n, a in after.items()), facts
    assert all(a["fs"] > before[n]["fs"] + 1024**3 for n, a in after.items()), facts
    assert crm_started_on(m1, FS_CLONE) == {"m1", "m2", "m3"}
    rolling.check(facts)
    assert facts["quorum"] == {"Expected votes": "3", "Total votes": "3", "Quorum": "2", "Flags": "Quorate"}, facts
    assert facts["fencing"].count("reboot") == 0, facts
    assert {g.name: cluster_stack(g) for g in cluster.members} == stacks, "corosync or pacemaker was restarted"
    assert sha256_on(cluster.members[2], f"{cluster.mount_point}/{DATA}") == data
    figures = {
        "up_seconds": round(run.seconds, 1),
        "gib": {"device": 6, "fs_before": round(before["m1"]["fs"] / 1024**3, 2),
                "fs_after": round(after["m1"]["fs"] / 1024**3, 2)},
        "df_caught_up_on_every_member_s": df_lag,
        **rolling.figures(),
        **assert_second_up_changes_nothing(engine),
    }
    record("day2-grow-storage", figures)


def set_member_size(engine: Engine, vcpu: int, memory_mib: int) -> None:
    edit_stack(engine, lambda c: c["gfs2-cluster:members"].update(vcpu=vcpu, memoryMib=memory_mib))


def machine(guest: Guest) -> dict[str, int]:
    out = guest.run("nproc; awk '/^MemTotal:/ {print $2}' /proc/meminfo")
    vcpus, kib = (int(v) for v in out.split())
    return {"vcpus": vcpus, "mem_total_mib": kib // 1024}


def test_resizing_the_members_restarts_them_one_at_a_time(cluster: Cluster):
    """members.vcpu 1 -> 2 and memoryMib 1024 -> 1280: each member leaves the cluster,
    powers off, boots with the new size and is back with GFS2 mounted before the next
    goes. A writer on every member runs until its own member leaves; none may fail."""
    engine, m1 = cluster.engine, cluster.members[0]
    data = sha256_on(m1, f"{cluster.mount_point}/{DATA}")
    before = {g.name: machine(g) for g in cluster.members}
    domains = {g.name: virsh("domuuid", g.domain).stdout.strip() for g in cluster.members}
    set_member_size(engine, 2, 1280)
    with Rolling(cluster, "resize", "leave") as rolling:
        run = engine.up()
    assert run.result == "succeeded", run.result
    after = {g.name: machine(g) for g in cluster.members}
    facts = {"before": before, "after": after, **rolling.facts(), "fencing": fencing_history(m1), "quorum": quorum(m1)}
    print(f"e2e resize facts: {facts}")
    assert all(a["vcpus"] == 2 and a["mem_total_mib"] > before[n]["mem_total_mib"] + 200 for n, a in after.items()), facts
    assert {g.name: virsh("domuuid", g.domain).stdout.strip() for g in cluster.members} == domains, "a domain was replaced"
    assert crm_started_on(m1, FS_CLONE) == {"m1", "m2", "m3"}
    rolling.check(facts)
    assert all(w.result["ended_as_member_left"] for w in rolling.writers), facts
    assert facts["quorum"] == {"Expected votes": "3", "Total votes": "3", "Quorum": "2", "Flags": "Quorate"}, facts
    assert facts["fencing"].count("reboot") == 0, f"a member was fenced: {facts}"
    assert sha256_on(cluster.members[1], f"{cluster.mount_point}/{DATA}") == data
    figures = {"up_seconds": round(run.seconds, 1), "after": after, **rolling.figures(),
               **assert_second_up_changes_nothing(engine)}
    record("day2-resize-members", figures)


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
