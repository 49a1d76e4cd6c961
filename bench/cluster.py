"""Cluster benchmarks on real guests of this machine, built by tools/graph_runner.py (it
stands in for the provider plugins that cannot be built here; these are not `pulumi up`
figures):

1. build: the local stack from nothing (image cached), the graph in parallel against the
   serial baseline (the same node scripts one after the other), and 3 against 5 members;
2. re-run: every node command a second time, and how many of them changed something;
3. the file system, from inside the guests: sequential write and read on the GFS2 mount
   against the raw logical volume next to it on the same shared device; three members
   writing at once against one alone; small files created, stat'ed and deleted by one
   member against two members in one directory.

    python bench/cluster.py [--repeat 3] [--json FILE]

Needs root, libvirt and the builtin image (make setup; image/build.sh). About 45 minutes.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import graph_runner  # noqa: E402
from tools.guests import guests  # noqa: E402
from tools.program_graph import stack_config  # noqa: E402

STACK = "local"
RAW_LV = "lv_raw"
FIO_SIZE = "512M"


def bench_stack_file(folder: Path, members: int) -> Path:
    """The local stack with N members and, beside the GFS2 volume, a raw LV of the same
    shared device for the raw-device comparison."""
    config = copy.deepcopy(stack_config(STACK))
    config["members"]["count"] = members
    vg = config["storage"]["volumeGroups"][0]
    vg["logicalVolumes"][0]["size"] = "2400M"
    vg["logicalVolumes"].append({"name": RAW_LV, "size": "100%FREE"})
    path = folder / f"Pulumi.{STACK}-{members}.yaml"
    path.write_text(yaml.safe_dump({"config": {f"gfs2-cluster:{k}": v for k, v in config.items()}}))
    return path


def host_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all the host's CPUs, from the first line of /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_since(start: tuple[int, int]) -> float:
    """Share of the host's CPU time that was busy since START: near 1.0 means every core
    was working, so more parallel work can only queue."""
    busy, total = host_cpu()
    return round((busy - start[0]) / max(1, total - start[1]), 2)


def member_boot_seconds(timing: dict) -> float:
    """Median wait of the members' `ready` steps (domain started -> SSH answers): the
    per-member step that needs the most CPU, a TCG guest booting."""
    ready = [r["seconds"] for r in timing["resources"] if re.fullmatch(r".*-m\d+-ready", r["name"])]
    return round(statistics.median(ready), 1)


def runner(verb: str, stack_file: Path, parallel: int, timing: Path) -> dict:
    cpu = host_cpu()
    argv = [sys.executable, str(ROOT / "tools" / "graph_runner.py"), verb, "--stack", STACK,
            "--parallel", str(parallel), "--timing", str(timing), "--stack-file", str(stack_file)]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"graph runner {verb} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return {**json.loads(timing.read_text()), "host_cpu_busy": busy_since(cpu)}


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2), "n": len(values)}


def fio(guest, name: str, rw: str, target: str, size: str = FIO_SIZE) -> float:
    """MiB/s of one fio job with direct I/O (no guest page cache in the figure)."""
    return fio_job(guest, name, rw, target, size)["mib_s"]


def fio_job(guest, name: str, rw: str, target: str, size: str = FIO_SIZE) -> dict:
    """One fio job: MiB/s, the CPU it used inside the guest (usr+sys, % of one vCPU) and
    how busy the host's CPUs were meanwhile."""
    cpu = host_cpu()
    out = guest.run(
        f"fio --name={name} --filename={target} --rw={rw} --bs=1M --size={size} --direct=1 "
        f"--ioengine=libaio --iodepth=4 --output-format=json",
        timeout=1800,
    )
    job = json.loads(out[out.index("{"):])["jobs"][0]
    return {"mib_s": job["write" if "write" in rw else "read"]["bw"] / 1024,
            "guest_cpu_pct": job["usr_cpu"] + job["sys_cpu"], "host_cpu_busy": busy_since(cpu)}


SMALL_FILES = r"""
import os, sys, time
folder, count, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.makedirs(folder, exist_ok=True)
names = [os.path.join(folder, f"{tag}-{i}") for i in range(count)]
t = [time.monotonic()]
for n in names:
    os.close(os.open(n, os.O_CREAT | os.O_WRONLY, 0o644))
t.append(time.monotonic())
for n in names:
    os.stat(n)
t.append(time.monotonic())
for n in names:
    os.unlink(n)
t.append(time.monotonic())
print(" ".join(f"{count / (b - a):.1f}" for a, b in zip(t, t[1:])))
"""


def small_files(guest, folder: str, count: int, tag: str) -> list[float]:
    """create/s, stat/s, delete/s of COUNT empty files in FOLDER."""
    out = guest.run(f"python3 -c {shlex.quote(SMALL_FILES)} {folder} {count} {tag}", timeout=1800)
    return [float(x) for x in out.split()]


def filesystem(members: list, mount: str, device: str, repeat: int) -> dict:
    m1 = members[0]
    m1.run(f"mkdir -p {mount}/bench")
    rows: dict = {}
    for rw in ("write", "read"):
        gfs2 = [fio_job(m1, "seq", rw, f"{mount}/bench/seq") for _ in range(repeat)]
        raw = [fio_job(m1, "seq", rw, device) for _ in range(repeat)]
        row = {f"{where}_{k}": spread([job[k] for job in jobs])
               for k in ("mib_s", "guest_cpu_pct", "host_cpu_busy") for where, jobs in (("gfs2", gfs2), ("raw", raw))}
        row["ratio"] = round(row["gfs2_mib_s"]["median"] / row["raw_mib_s"]["median"], 2)
        rows[f"sequential {rw}"] = row
    m1.run(f"rm -f {mount}/bench/seq")
    alone = [fio(m1, "one", "write", f"{mount}/bench/one", "256M") for _ in range(repeat)]
    together = []
    for _ in range(repeat):
        with ThreadPoolExecutor(len(members)) as pool:
            together.append(sum(pool.map(
                lambda m: fio(m, m.name, "write", f"{mount}/bench/{m.name}", "256M"), members)))
    rows[f"{len(members)} members writing at once"] = {
        "aggregate_mib_s": spread(together), "one_member_mib_s": spread(alone),
        "ratio": round(statistics.median(together) / statistics.median(alone), 2)}
    one = [small_files(m1, f"{mount}/bench/small", 300, "a") for _ in range(repeat)]
    shared = []
    for _ in range(repeat):
        with ThreadPoolExecutor(2) as pool:
            shared.append(list(pool.map(lambda m: small_files(m, f"{mount}/bench/small", 300, m.name), members[:2])))
    for i, op in enumerate(("create", "stat", "delete")):
        alone_ops = [r[i] for r in one]
        both_ops = [a[i] + b[i] for a, b in shared]
        rows[f"small files: {op}"] = {"one_member_ops_s": spread(alone_ops), "two_members_same_dir_ops_s": spread(both_ops),
                                      "ratio": round(statistics.median(both_ops) / statistics.median(alone_ops), 2)}
    m1.run(f"rm -rf {mount}/bench")
    return rows


def tables(results: dict) -> str:
    b = results["build"]
    cpu, boot = b["host_cpu_busy"], b["member_boot_seconds"]
    lines = [
        "Build (graph runner; one run each; host CPU busy share; median member boot to SSH)",
        f"  parallel, 3 members   {b['parallel_3']:>7.1f} s   cpu {cpu['parallel_3']:.2f}   boot {boot['parallel_3']} s",
        f"  serial,   3 members   {b['serial_3']:>7.1f} s   cpu {cpu['serial_3']:.2f}   boot {boot['serial_3']} s"
        f"   parallel/serial {b['parallel_over_serial']}",
        f"  parallel, 5 members   {b['parallel_5']:>7.1f} s   cpu {cpu['parallel_5']:.2f}   boot {boot['parallel_5']} s"
        f"   5/3 members {b['five_over_three']}",
        f"  destroy,  3 members   {b['destroy_3']:>7.1f} s   cpu {cpu['destroy_3']:.2f}",
        "Re-run (every node command again)",
        f"  {results['rerun']['seconds']} s for {results['rerun']['commands']} commands; changed something: "
        f"{len(results['rerun']['commands_that_changed_something'])}",
        f"File system (median, min-max over {results['repeat']} runs; MiB/s or ops/s)",
    ]
    for name, row in results["filesystem"].items():
        figures = "  ".join(
            f"{k} {v['median']} ({v['min']}-{v['max']})" for k, v in row.items() if isinstance(v, dict)
        )
        lines.append(f"  {name:<28} {figures}  ratio {row['ratio']}")
    return "\n".join(lines)


def save(path: Path | None, results: dict) -> None:
    if path:
        path.write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    subprocess.run([str(ROOT / "tools" / "local-secrets.sh"), str(ROOT / ".state/secrets/local-dev")], check=True)
    subprocess.run([str(ROOT / "image" / "build.sh")], check=True)
    if graph_runner.State(STACK).resources:
        sys.exit("the local stack is up (graph runner state): destroy it first")
    results: dict = {"runner": "tools/graph_runner.py (not pulumi up)", "repeat": args.repeat}
    with tempfile.TemporaryDirectory(prefix="gfs2-bench-") as tmp:
        folder = Path(tmp)
        three, five = bench_stack_file(folder, 3), bench_stack_file(folder, 5)
        t = folder / "t.json"
        runs = {"parallel_3": runner("up", three, 8, t)}
        results["build"] = {"parallel_3": runs["parallel_3"]["wall_seconds"],
                            "host_cpu_busy": {"parallel_3": runs["parallel_3"]["host_cpu_busy"]}}
        graph = graph_runner.capture(STACK, three)
        config = yaml.safe_load(three.read_text())["config"]
        found = guests(graph, ROOT / config["gfs2-cluster:ssh"]["privateKeyFile"])
        members = [found[n] for n in sorted(found) if n.startswith("m")]
        vg = config["gfs2-cluster:storage"]["volumeGroups"][0]
        mount = vg["logicalVolumes"][0]["filesystem"]["mountPoint"]
        results["filesystem"] = filesystem(members, mount, f"/dev/{vg['name']}/{RAW_LV}", args.repeat)
        save(args.json, results)  # a later phase that fails keeps what was measured
        started = time.monotonic()
        rerun = runner("rerun", three, 8, t)
        changed = [n for n, out in rerun["outputs"].items() if "result: unchanged" not in out]
        results["rerun"] = {"seconds": round(time.monotonic() - started, 1), "commands": len(rerun["outputs"]),
                            "commands_that_changed_something": changed}
        save(args.json, results)
        runs["destroy_3"] = runner("destroy", three, 8, t)
        runs["serial_3"] = runner("up", three, 1, t)
        runner("destroy", three, 8, t)
        runs["parallel_5"] = runner("up", five, 8, t)
        runner("destroy", five, 8, t)
        build = {name: run["wall_seconds"] for name, run in runs.items()}
        build["host_cpu_busy"] = {name: run["host_cpu_busy"] for name, run in runs.items()}
        build["member_boot_seconds"] = {name: member_boot_seconds(run) for name, run in runs.items() if name != "destroy_3"}
        build["parallel_over_serial"] = round(build["parallel_3"] / build["serial_3"], 2)
        build["five_over_three"] = round(build["parallel_5"] / build["parallel_3"], 2)
        results["build"] = build
    print(tables(results))
    save(args.json, results)


if __name__ == "__main__":
    main()
