"""Cluster benchmarks through the real engine (Pulumi Automation API) on guests of this
machine (issue 13, items 1-3 and 6):

1. build: `pulumi up` of the local stack's shape from nothing (image cached), against a
   serial baseline on the same guests: the libvirt resources alone by a targeted
   `pulumi up --parallel 1`, then every node command's create, as the engine recorded it
   in the state of the parallel build, one after the other over SSH (or on this host),
   in the deployment's dependency order: the same work without the engine's
   parallelism. Then 5 members against 3. One run each.
2. re-run: a no-op `pulumi up` against `pulumi preview` of the built stack, and how many
   node commands the up executed (must be 0).
3. the file system, from one member: fio on GFS2 against fio on the raw imported device
   (the extents of a raw LV beside GFS2 on it, so that no write touches GFS2): sequential
   write and read of 1 MiB blocks, 4 KiB random read; three members writing their own
   files at once against one alone; a lock round trip: two members appending to one file
   under flock strictly in turns.
6. beside each figure: the host's CPU busy share, guest boot times, every engine step's
   duration (ResourcePreEvent -> ResOutputsEvent) and the critical path through them;
   `missed` names each ratio off its target, with where the time went.

    python bench/cluster.py [--repeat 3] [--json FILE]

The stack is `bench` (tenant bench, VLAN 20, 10.77.20.0/24), in its own backend
(.state/bench/), so the `local` stack and its guests are never touched; its physical
names (g2-bench-dev-*) must be free. Needs root, libvirt and the builtin image. Two
builds, a serial baseline and a 5-member build: expect one to two hours on 2 TCG cores.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from engine import (  # noqa: E402
    EngineFailed, Guest, NodeCommands, Project, Run, busy_since, closure, critical_path, engine_run, git_state, graph,
    host_cpu, phase, stack_file_config,
)
from render.host import forward_chain  # noqa: E402
from spec import build, load_spec  # noqa: E402
from spec.topology import Topology  # noqa: E402

STACK = "bench"
STATE = ROOT / ".state" / "bench"
LOGS = STATE / "logs"
KEYS = ROOT / ".state" / "secrets" / "bench-dev"
URI = "qemu:///system"
RAW_LV = "lv_raw"
FIO_SIZE_MIB = 512
WRITERS_SIZE_MIB = 256
LOCK_TURNS = 100
# The project's targets: a ratio on the wrong side is "missed".
TARGETS = {
    "build parallel/serial": ("<", 0.5),
    "build 5/3 members": ("<", 1.15),  # per-member work runs side by side
    "no-op up/preview": ("<", 1.3),  # and it runs no node command
    "gfs2/raw sequential write": (">", 0.8),
    "gfs2/raw sequential read": (">", 0.8),
    "gfs2/raw random read 4k": (">", 0.8),
    "3 writers/1 writer": (">", 1.0),  # three at once at least as much as one alone
}


def bench_config(members: int) -> dict:
    """The local stack as tenant `bench` with MEMBERS members, its keys in .state/secrets/
    bench-dev/, and a raw LV beside the GFS2 one on the same shared device."""
    config = copy.deepcopy(stack_file_config(ROOT / "stacks" / "Pulumi.local.yaml"))
    config["tenant"] = "bench"
    config["network"].update(vlanId=20, cidr="10.77.20.0/24")
    config["members"]["count"] = members
    config["fencing"]["keyFile"] = str(KEYS / "fence_xvm.key")
    config["cluster"]["authKeyFile"] = str(KEYS / "corosync.key")
    config["ssh"].update(privateKeyFile=str(KEYS / "id_ed25519"), publicKeyFile=str(KEYS / "id_ed25519.pub"))
    vg = config["storage"]["volumeGroups"][0]
    vg["logicalVolumes"][0]["size"] = "2400M"
    vg["logicalVolumes"].append({"name": RAW_LV, "size": "100%FREE"})
    return config


def topology(config: dict) -> Topology:
    return build(load_spec(config))


def sh(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True)


def leftovers(topo: Topology) -> list[str]:
    """What of the bench stack is on this machine, by its names."""
    names = topo.names
    found = []
    domains = set(sh("virsh", "-c", URI, "list", "--all", "--name").stdout.split())
    found += [f"domain {g.domain}" for g in topo.guests if g.domain in domains]
    if names.network in sh("virsh", "-c", URI, "net-list", "--all", "--name").stdout.split():
        found.append(f"network {names.network}")
    if names.pool in sh("virsh", "-c", URI, "pool-list", "--all", "--name").stdout.split():
        found.append(f"pool {names.pool}")
    if (pool_dir := Path("/var/lib/libvirt/gfs2-cluster") / names.stack_id).exists():
        found.append(f"pool dir {pool_dir}")
    if sh("ip", "link", "show", topo.bridge).returncode == 0:
        found.append(f"bridge {topo.bridge}")
    if Path(names.host_dir).exists():
        found.append(f"dir {names.host_dir}")
    found += [f"process {line.strip()}" for line in sh("ps", "-eo", "pid=,args=").stdout.splitlines()
              if names.host_dir + "/" in line]
    if re.search(rf"^-N {re.escape(forward_chain(topo))}$", sh("iptables", "-S").stdout, re.M):
        found.append(f"iptables chain {forward_chain(topo)}")
    return found


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2), "n": len(values)}


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("nan")


def missed(name: str, value: float) -> bool:
    op, target = TARGETS[name]
    return not (value < target if op == "<" else value > target)


def destroy(stack, label: str) -> Run:
    """pulumi destroy, once more if it fails: a member fenced while GFS2 stops breaks the
    step that runs on it, and a second destroy carries on (README)."""
    try:
        return engine_run(stack, "destroy", LOGS, label)
    except EngineFailed as e:
        print(f"bench: {e}\nbench: destroying again in 60 s", flush=True)
        time.sleep(60)
        return engine_run(stack, "destroy", LOGS, f"{label}-again")


# --- 1. build -------------------------------------------------------------------------

def guest_boot_seconds(topo: Topology, ends: dict[str, float]) -> dict[str, float]:
    """Per guest: its domain created -> its `ready` step done (SSH answers), from the
    end times of those steps by resource name."""
    out = {}
    for g in topo.guests:
        base = topo.names.resource(g.name)
        domain, ready = ends.get(f"{base}-domain"), ends.get(f"{base}-ready")
        if domain is not None and ready is not None:
            out[g.name] = round(ready - domain, 1)
    return out


def build_record(run: Run, nodes: list, topo: Topology) -> dict:
    path_seconds, path = critical_path(nodes, run.durations())
    ends = {s.name: s.end for s in run.steps.values() if s.end is not None}
    boots = guest_boot_seconds(topo, ends)
    return {
        **run.record(),
        "members": len(topo.members),
        "node_commands": len([s for s in run.steps.values() if s.type.startswith("command:")]),
        "critical_path_seconds": path_seconds,
        "critical_path": path,
        "guest_boot_seconds": boots,
        "guest_boot_median": round(statistics.median(boots.values()), 1) if boots else None,
    }


JOIN_STEP = "STEP=cluster-join\n"


def serial_order(todo: list) -> tuple[list, list, list]:
    """TODO (deployment order) as: what runs one at a time before the joins of the
    members after the first, those joins (run at once), and what needs them. Joined one
    by one, the first two members form a quorum and fence the third as unseen before
    its turn comes (pacemaker's startup fencing): the seed's procedure, too, starts the
    cluster on every node at once. The first member joins alone (no quorum, no fencing)."""
    joins = [n for n in todo if JOIN_STEP in (n.inputs.get("create") or "")]
    group = {n.urn for n in joins[1:]}
    blocked, first, after = set(group), [], []
    for n in todo:
        if n.urn in group:
            continue
        if n.deps & blocked:
            blocked.add(n.urn)
            after.append(n)
        else:
            first.append(n)
    return first, joins[1:], after


class SerialBuild:
    """The baseline: libvirt resources by the engine, one at a time (they are not node
    scripts, and only the engine's provider makes them), then every other command of
    NODES by NodeCommands, one after the other, in deployment order (the later members'
    joins at once: serial_order). What it ran
    outside the engine is not in the state: teardown() runs the deletes of its host
    commands (fence_virtd) itself; the guests' go with the domains."""

    def __init__(self, stack, project: Project, nodes: list, topo: Topology, keys_dir: Path):
        self.stack, self.project, self.nodes, self.topo = stack, project, nodes, topo
        self.runner = NodeCommands(project.dir, keys_dir, project.env)
        self.ran: list = []

    def run(self) -> dict:
        targets = closure(self.nodes, [n.urn for n in self.nodes if n.is_libvirt])
        cpu, started_all = host_cpu(), time.monotonic()
        infra = engine_run(self.stack, "up", LOGS, f"serial-{len(self.topo.members)}-libvirt",
                           target=[n.urn for n in targets], parallel=1)
        in_state = {r["urn"] for r in self.stack.export_stack().deployment.get("resources") or []}
        absent = [n.name for n in targets if n.urn not in in_state]
        if absent:
            raise RuntimeError(f"the targeted up did not create {absent}")
        steps, ends = [], {s.name: s.end for s in infra.steps.values() if s.end is not None}
        todo = [n for n in self.nodes if n.is_command and n.urn not in in_state]
        first, together, after = serial_order(todo)
        with phase(f"serial node commands ({len(todo)}: one at a time, the {len(together)} later joins at once)"):
            t0 = time.monotonic()
            for n in first:
                steps.append(self._run(n, infra.started, ends))
            with ThreadPoolExecutor(max(1, len(together))) as pool:
                steps += list(pool.map(lambda n: self._run(n, infra.started, ends), together))
            for n in after:
                steps.append(self._run(n, infra.started, ends))
            commands_seconds = time.monotonic() - t0
        wall = time.monotonic() - started_all
        target_urns = {n.urn for n in targets}
        seconds = {u: s for u, s in infra.durations().items() if u in target_urns}
        seconds.update({s["urn"]: s["seconds"] for s in steps})
        # The work without the engine's own time (program, planning, state writes).
        work = sum(seconds.values())
        # The same durations, each step run alone: the longest chain through them is the
        # least wall time any parallelism could give, so chain/work bounds the ratio.
        path_seconds, path = critical_path(self.nodes, seconds)
        boots = guest_boot_seconds(self.topo, ends)
        return {
            "wall_seconds": round(wall, 1),
            "libvirt_up": infra.record(),
            "commands_seconds": round(commands_seconds, 1),
            "sum_of_step_seconds": round(work, 1),
            "critical_path_seconds": path_seconds,
            "critical_path": path,
            "best_parallel_ratio": ratio(path_seconds, work),
            "host_cpu_busy": busy_since(cpu),
            "node_commands": len(steps),
            "commands_in_the_targeted_up": sorted(n.name for n in targets if n.is_command),
            "commands": steps,
            # Upper bounds here: a guest's `ready` waits its turn behind other commands.
            "guest_boot_seconds": boots,
            "guest_boot_median": round(statistics.median(boots.values()), 1) if boots else None,
        }

    def _run(self, n, started: float, ends: dict) -> dict:
        t = time.time()
        self.ran.append(n)
        step = self.runner.run(n)
        ends[n.name] = time.time()
        print(f"bench {time.strftime('%H:%M:%S')}   {n.name}: {step['seconds']:.1f} s", flush=True)
        return {**step, "urn": n.urn, "start": round(t - started, 1)}

    def teardown(self) -> None:
        for n in reversed(self.ran):
            if n.type == "command:local:Command":
                try:
                    self.runner.run(n, "delete")
                except Exception as e:  # noqa: BLE001 - the engine's destroy comes next anyway
                    print(f"bench: delete of {n.name} failed: {e}", flush=True)
        self.ran = []
        destroy(self.stack, f"serial-{len(self.topo.members)}-destroy")


# --- 2. re-run ------------------------------------------------------------------------

def rerun(stack, repeat: int) -> dict:
    previews, ups, changed, commands = [], [], {}, []
    for i in range(repeat):
        previews.append(engine_run(stack, "preview", LOGS, f"rerun-preview-{i}"))
        ups.append(engine_run(stack, "up", LOGS, f"rerun-up-{i}"))
        changed.update({u.rsplit("::", 1)[-1]: op for u, op in ups[-1].changed().items()})
        commands += [u.rsplit("::", 1)[-1] for u in ups[-1].commands_run()]
    up_s, pv_s = [r.seconds for r in ups], [r.seconds for r in previews]
    return {
        "up_seconds": spread(up_s),
        "preview_seconds": spread(pv_s),
        "ratio": ratio(statistics.median(up_s), statistics.median(pv_s)),
        "steps": ups[-1].planned(),
        "commands_executed": len(commands),
        "commands_that_ran": sorted(set(commands)),
        "resources_changed": changed,
        "preview_planned_changes": sorted({u.rsplit("::", 1)[-1] for r in previews for u in r.changed()}),
        "up": ups[-1].record(),
        "preview": previews[-1].record(),
    }


# --- 3. the file system ---------------------------------------------------------------

def fio(guest: Guest, target: str, rw: str, bs: str, extra: str = "") -> dict:
    """One fio job with direct I/O (no page cache in the figure): MiB/s, IOPS, the CPU it
    used inside the guest (usr+sys, % of one vCPU) and the host's CPU busy share."""
    cpu = host_cpu()
    out = guest.run(f"fio --name=bench --filename={target} --rw={rw} --bs={bs} --direct=1 --ioengine=libaio "
                    f"--iodepth={16 if rw == 'randread' else 4} {extra} --output-format=json", timeout=1800)
    job = json.loads(out[out.index("{"):])["jobs"][0]
    side = job["write" if "write" in rw else "read"]
    return {"mib_s": round(side["bw"] / 1024, 1), "iops": round(side["iops"], 1),
            "guest_cpu_pct": round(job["usr_cpu"] + job["sys_cpu"], 1), "host_cpu_busy": busy_since(cpu)}


def raw_region(guest: Guest, vg: str) -> tuple[str, int]:
    """The imported device under the raw LV and the byte offset of that LV on it: fio
    writes there without touching GFS2's extents (one segment on one PV, by LVM)."""
    ranges, extent = guest.run(f"lvs --noheadings --nosuffix --units b -o seg_pe_ranges,vg_extent_size {vg}/{RAW_LV}").split()
    device, pe = ranges.rsplit(":", 1)
    first_pe = int(pe.split("-")[0])
    pe_start = int(float(guest.run(f"pvs --noheadings --nosuffix --units b -o pe_start {device}").split()[0]))
    size = int(float(guest.run(f"lvs --noheadings --nosuffix --units b -o lv_size {vg}/{RAW_LV}").split()[0]))
    if size < FIO_SIZE_MIB * 2**20:
        raise RuntimeError(f"{vg}/{RAW_LV} holds {size} bytes, fio needs {FIO_SIZE_MIB} MiB")
    return device, pe_start + first_pe * int(float(extent))


LOCK_SCRIPT = r"""
import fcntl, os, sys, time
path, me, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fd = os.open(path, os.O_RDWR | os.O_APPEND)
mine = polls = 0
first = last = None
while mine < n:
    fcntl.flock(fd, fcntl.LOCK_EX)
    lines = os.fstat(fd).st_size // 16
    if lines % 2 == me:
        os.write(fd, b"%1d %13d\n" % (me, lines))
        mine += 1
        last = time.monotonic()
        first = first if first is not None else last
    else:
        polls += 1
    fcntl.flock(fd, fcntl.LOCK_UN)
print(mine, polls, last - first)
"""


def lock_round_trip(a: Guest, b: Guest, reader: Guest, path: str, turns: int) -> dict:
    """A and B append one 16-byte line each in strict turns under the file's flock (on
    GFS2 a DLM lock): every append moves the lock to the other member. ops/s from each
    member's own clock, first to last append."""
    a.run(f": >{path}")
    results: dict = {}

    def turn(g: Guest, me: int) -> None:
        results[g.name] = g.run(f"python3 -c {shlex.quote(LOCK_SCRIPT)} {path} {me} {turns}", timeout=3600).split()

    threads = [threading.Thread(target=turn, args=(g, i)) for i, g in enumerate((a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = reader.run(f"cat {path}").splitlines()
    alternating = [int(line.split()[0]) for line in lines] == [i % 2 for i in range(2 * turns)]
    rates = [2 * (turns - 1) / float(r[2]) for r in results.values() if len(r) == 3 and float(r[2]) > 0]
    if not alternating or len(rates) != 2:
        raise RuntimeError(f"lock round trip: {len(lines)} lines, alternating {alternating}, {results}")
    return {"ops_s": round(statistics.median(rates), 1), "round_trip_ms": round(1000 / statistics.median(rates), 1),
            "polls": {name: int(r[1]) for name, r in results.items()}}


def filesystem(members: list[Guest], mount: str, vg: str, repeat: int) -> dict:
    m1 = members[0]
    folder = f"{mount}/bench"
    m1.run(f"mkdir -p {folder}")
    device, offset = raw_region(m1, vg)
    size = f"--size={FIO_SIZE_MIB}M"
    raw = f"{device} --offset={offset}"
    jobs = {
        "sequential write": ("write", "1M", ""),
        "sequential read": ("read", "1M", ""),
        "random read 4k": ("randread", "4k", "--runtime=30 --time_based"),
    }
    runs: dict = {name: {"gfs2": [], "raw": []} for name in jobs}
    with phase(f"fio on GFS2 and on the raw device, {repeat} times"):
        for _ in range(repeat):
            m1.run(f"rm -f {folder}/seq")  # each write allocates anew
            for name, (rw, bs, extra) in jobs.items():
                runs[name]["gfs2"].append(fio(m1, f"{folder}/seq", rw, bs, f"{size} {extra}"))
                runs[name]["raw"].append(fio(m1, raw, rw, bs, f"{size} {extra}"))
    rows: dict = {"raw_device": {"device": device, "offset_bytes": offset, "lv": f"{vg}/{RAW_LV}"}}
    for name, where in runs.items():
        key = "iops" if name.startswith("random") else "mib_s"
        row = {f"{w}_{k}": spread([job[k] for job in where[w]])
               for k in ("mib_s", "iops", "guest_cpu_pct", "host_cpu_busy") for w in ("gfs2", "raw")}
        row["ratio"] = ratio(row[f"gfs2_{key}"]["median"], row[f"raw_{key}"]["median"])
        row["ratio_of"] = key
        rows[name] = row
    m1.run(f"rm -f {folder}/seq")

    with phase(f"{len(members)} members writing at once against one alone, {repeat} times"):
        write = f"--size={WRITERS_SIZE_MIB}M"
        alone, together, cpu_together = [], [], []
        for _ in range(repeat):
            m1.run(f"rm -f {folder}/w-*")
            alone.append(fio(m1, f"{folder}/w-alone", "write", "1M", write)["mib_s"])
            cpu = host_cpu()
            with ThreadPoolExecutor(len(members)) as pool:
                together.append(sum(pool.map(lambda m: fio(m, f"{folder}/w-{m.name}", "write", "1M", write)["mib_s"], members)))
            cpu_together.append(busy_since(cpu))
        m1.run(f"rm -f {folder}/w-*")
    rows[f"{len(members)} writers at once"] = {
        "aggregate_mib_s": spread(together), "one_member_mib_s": spread(alone),
        "host_cpu_busy_together": spread(cpu_together),
        "ratio": ratio(statistics.median(together), statistics.median(alone)), "ratio_of": "mib_s"}

    with phase(f"lock round trip: two members appending in turns under flock, {repeat} times"):
        trips = [lock_round_trip(members[0], members[1], members[-1], f"{folder}/turns.log", LOCK_TURNS)
                 for _ in range(repeat)]
    rows["lock round trip"] = {"ops_s": spread([t["ops_s"] for t in trips]),
                               "round_trip_ms": spread([t["round_trip_ms"] for t in trips]),
                               "turns_per_member": LOCK_TURNS, "polls": [t["polls"] for t in trips]}
    m1.run(f"rm -rf {folder}")
    return rows


# --- results --------------------------------------------------------------------------

def ratios(results: dict) -> dict:
    out = {}
    b = results.get("build", {})
    if "parallel_3" in b and "serial_3" in b:
        out["build parallel/serial"] = ratio(b["parallel_3"]["wall_seconds"], b["serial_3"]["wall_seconds"])
    if "parallel_3" in b and "parallel_5" in b:
        out["build 5/3 members"] = ratio(b["parallel_5"]["wall_seconds"], b["parallel_3"]["wall_seconds"])
    if "rerun" in results:
        out["no-op up/preview"] = results["rerun"]["ratio"]
    fs = results.get("filesystem", {})
    for job in ("sequential write", "sequential read", "random read 4k"):
        if job in fs:
            out[f"gfs2/raw {job}"] = fs[job]["ratio"]
    for name, row in fs.items():
        if name.endswith("writers at once"):
            out["3 writers/1 writer"] = row["ratio"]
    return out


def where_time_went(results: dict, name: str) -> dict:
    b, fs = results.get("build", {}), results.get("filesystem", {})

    def build_view(key: str) -> dict:
        r = b[key]
        keep = ("wall_seconds", "host_cpu_busy", "sum_of_step_seconds", "critical_path_seconds",
                "best_parallel_ratio", "critical_path", "guest_boot_median", "longest_steps")
        return {k: r[k] for k in keep if k in r}

    if name.startswith("build"):
        return {k: build_view(k) for k in ("parallel_3", "serial_3", "parallel_5") if k in b}
    if name.startswith("no-op"):
        r = results["rerun"]
        return {"up": {k: r["up"][k] for k in ("wall_seconds", "engine_seconds", "host_cpu_busy", "longest_steps")},
                "preview": {k: r["preview"][k] for k in ("wall_seconds", "engine_seconds", "host_cpu_busy", "longest_steps")}}
    job = name.split(" ", 1)[1] if name.startswith("gfs2/raw") else next(k for k in fs if k.endswith("writers at once"))
    return {k: v for k, v in fs[job].items() if "cpu" in k}


def conclude(results: dict) -> None:
    results["ratios"] = ratios(results)
    results["targets"] = {k: f"{op} {round(t, 2)}" for k, (op, t) in TARGETS.items()}
    results["missed"] = {}
    for k, v in results["ratios"].items():
        if missed(k, v):
            try:
                why = where_time_went(results, k)
            except (KeyError, StopIteration) as e:  # a run that stopped early
                why = {"unknown": f"no figures for it ({e})"}
            results["missed"][k] = {"ratio": v, "target": results["targets"][k], "where_time_went": why}
    if results.get("rerun", {}).get("commands_executed"):
        results["missed"]["no-op up: node commands executed"] = {
            "value": results["rerun"]["commands_executed"], "target": "0",
            "where_time_went": {"commands": results["rerun"]["commands_that_ran"]}}


def tables(results: dict) -> str:
    lines = []
    b = results.get("build", {})
    if b:
        lines.append("Build (real engine; one run each; wall s, host CPU busy share, median guest boot to SSH)")
        for key, label in (("parallel_3", "pulumi up, 3 members"), ("serial_3", "serial baseline, 3"),
                           ("parallel_5", "pulumi up, 5 members"), ("destroy_3", "pulumi destroy, 3")):
            if key in b:
                r = b[key]
                boot = f"   boot {r['guest_boot_median']} s" if r.get("guest_boot_median") is not None else ""
                path = f"   critical path {r['critical_path_seconds']} s" if "critical_path_seconds" in r else ""
                lines.append(f"  {label:<24} {r['wall_seconds']:>7.1f} s   cpu {r['host_cpu_busy']:.2f}{boot}{path}")
    if "rerun" in results:
        r = results["rerun"]
        lines.append(f"Re-run (median of {r['up_seconds']['n']})")
        lines.append(f"  no-op pulumi up {r['up_seconds']['median']} s, pulumi preview {r['preview_seconds']['median']} s, "
                     f"ratio {r['ratio']}; node commands executed: {r['commands_executed']} (must be 0)")
    fs = results.get("filesystem", {})
    if fs:
        lines.append(f"File system (median, min-max over {results.get('repeat')} runs)")
        for name, row in fs.items():
            if name == "raw_device":
                continue
            figures = "  ".join(f"{k} {v['median']} ({v['min']}-{v['max']})" for k, v in row.items()
                                if isinstance(v, dict) and "cpu" not in k and (k.endswith(row.get("ratio_of", "")) or name == "lock round trip"))
            tail = f"  ratio {row['ratio']}" if "ratio" in row else ""
            lines.append(f"  {name:<22} {figures}{tail}")
    if results.get("ratios"):
        lines.append("Ratios against the bench's targets")
        for k, v in results["ratios"].items():
            lines.append(f"  {k:<28} {v:>6}   target {results['targets'][k]}{'   MISSED' if k in results['missed'] else ''}")
    return "\n".join(lines)


def save(path: Path | None, results: dict) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")


def start_from_nothing(stack, topo: Topology) -> None:
    if any(r["type"] != "pulumi:pulumi:Stack" for r in stack.export_stack().deployment.get("resources") or []):
        # An earlier bench run that did not finish: its state says what to remove.
        destroy(stack, "destroy-earlier-run")
    if found := leftovers(topo):
        sys.exit(f"the bench stack's names are in use on this machine (not in its state): {found}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each re-run and file system figure")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the cluster benchmarks need root (libvirt qemu:///system, iptables)")
    subprocess.run([str(ROOT / "tools" / "local-secrets.sh"), str(KEYS)], check=True)
    subprocess.run([str(ROOT / "image" / "build.sh")], check=True)
    three, five = bench_config(3), bench_config(5)
    topo3, topo5 = topology(three), topology(five)
    cpu = host_cpu()
    time.sleep(5)
    results: dict = {
        "engine": "pulumi " + sh("pulumi", "version").stdout.strip() + " (Automation API)",
        "git": git_state(), "stack": STACK, "repeat": args.repeat, "host_cpus": os.cpu_count(),
        "host_cpu_busy_before": busy_since(cpu), "build": {},
    }
    with tempfile.TemporaryDirectory(prefix="gfs2-bench-") as tmp:
        project = Project(Path(tmp), STATE)
        stack = project.stack(STACK, three)
        start_from_nothing(stack, topo3)
        serial = None
        try:
            up3 = engine_run(stack, "up", LOGS, "up-3")
            nodes = graph(stack.export_stack().deployment)
            results["build"]["parallel_3"] = build_record(up3, nodes, topo3)
            save(args.json, results)  # a later phase that fails keeps what was measured
            results["rerun"] = rerun(stack, args.repeat)
            save(args.json, results)
            key = Path(three["ssh"]["privateKeyFile"])
            members = [Guest(m.name, str(m.address), key) for m in topo3.members]
            vg = three["storage"]["volumeGroups"][0]
            mount = vg["logicalVolumes"][0]["filesystem"]["mountPoint"]
            results["filesystem"] = filesystem(members, mount, vg["name"], args.repeat)
            save(args.json, results)
            results["build"]["destroy_3"] = destroy(stack, "destroy-3").record()
            if found := leftovers(topo3):
                raise RuntimeError(f"pulumi destroy left {found}")
            serial = SerialBuild(stack, project, nodes, topo3, Path(tmp) / "keys")
            with phase("serial baseline, 3 members"):
                results["build"]["serial_3"] = serial.run()
            save(args.json, results)
            serial.teardown()
            serial = None
            if found := leftovers(topo3):
                raise RuntimeError(f"the serial baseline's teardown left {found}")
            stack = project.stack(STACK, five)
            up5 = engine_run(stack, "up", LOGS, "up-5")
            results["build"]["parallel_5"] = build_record(up5, graph(stack.export_stack().deployment), topo5)
            destroy(stack, "destroy-5")
            if found := leftovers(topo5):
                raise RuntimeError(f"pulumi destroy left {found}")
        finally:
            try:
                if serial is not None:
                    serial.teardown()
                elif any(r["type"] != "pulumi:pulumi:Stack" for r in stack.export_stack().deployment.get("resources") or []):
                    destroy(stack, "destroy-after-failure")
            finally:
                conclude(results)
                save(args.json, results)
    print(tables(results))


if __name__ == "__main__":
    main()
