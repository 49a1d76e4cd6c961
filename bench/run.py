"""make bench: every benchmark through the real engine; tables on stdout, JSON, one PNG
chart and a Markdown table in bench/results/ (git-ignored).

    python bench/run.py [--repeat 3] [--skip-cluster]

--skip-cluster runs only the previews (nothing created); the cluster benchmarks need
root and about an hour, and refuse to start where their names are in use.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "bench"))

import cluster  # noqa: E402
import program_scale  # noqa: E402


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def chart(scale: dict | None, clu: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ((build, rerun), (fs, prog)) = plt.subplots(2, 2, figsize=(12, 9))
    fig.suptitle("gfs2-cluster benchmarks (real Pulumi engine)")

    def empty(ax, title: str) -> None:
        ax.set_title(title)
        ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, color="gray")
        ax.set_xticks([])
        ax.set_yticks([])

    b = (clu or {}).get("build", {})
    bars = [(label, b[k]) for k, label in (("parallel_3", "up, 3"), ("serial_3", "serial, 3"), ("parallel_5", "up, 5"))
            if k in b]
    if bars:
        xs = range(len(bars))
        build.bar(xs, [r["wall_seconds"] for _, r in bars], color=["tab:blue", "tab:gray", "tab:cyan"][: len(bars)])
        paths = [(i, r["critical_path_seconds"]) for i, (_, r) in enumerate(bars) if "critical_path_seconds" in r]
        if paths:
            build.plot(*zip(*paths), "k_", markersize=30, label="critical path")
            build.legend()
        build.set_xticks(list(xs), [label for label, _ in bars])
        build.set_ylabel("wall seconds")
        build.set_title("Build from nothing")
    else:
        empty(build, "Build from nothing")

    r = (clu or {}).get("rerun")
    if r:
        rerun.bar([0, 1], [r["preview_seconds"]["median"], r["up_seconds"]["median"]], color=["tab:gray", "tab:blue"])
        rerun.set_xticks([0, 1], ["preview", "no-op up"])
        rerun.set_ylabel("wall seconds (median)")
        rerun.set_title(f"Re-run: ratio {r['ratio']}, node commands run: {r['commands_executed']}")
    else:
        empty(rerun, "Re-run")

    ratios = {k: v for k, v in (clu or {}).get("ratios", {}).items() if k.startswith(("gfs2/raw", "3 writers"))}
    if ratios:
        names = list(ratios)
        fs.barh(range(len(names)), [ratios[k] for k in names], color="tab:green")
        fs.set_yticks(range(len(names)), [k.replace("gfs2/raw ", "GFS2/raw: ") for k in names])
        fs.axvline(1.0, color="k", linewidth=0.8)
        lock = clu.get("filesystem", {}).get("lock round trip")
        title = "File system ratios"
        if lock:
            title += f"; lock round trip {lock['ops_s']['median']} ops/s"
        fs.set_title(title)
    else:
        empty(fs, "File system ratios")

    rows = [row for row in (scale or {}).get("rows", []) if "seconds" in row]
    if rows:
        xs = [row["resources"] for row in rows]
        prog.errorbar(xs, [row["seconds"]["median"] for row in rows],
                      yerr=[[row["seconds"]["median"] - row["seconds"]["min"] for row in rows],
                            [row["seconds"]["max"] - row["seconds"]["median"] for row in rows]], fmt="o", capsize=4)
        for row in rows:
            prog.annotate(f"{row['members']} members", (row["resources"], row["seconds"]["median"]),
                          textcoords="offset points", xytext=(6, -12))
        prog.plot(xs, [row["program_seconds"]["median"] for row in rows], "s", color="tab:orange",
                  label="first to last step")
        line = [0, max(xs) * 1.1]
        for key, color in (("fit", "tab:blue"), ("fit_program", "tab:orange")):
            if f := scale.get(key):
                prog.plot(line, [f["fixed_seconds"] + f["ms_per_added_resource"] * x / 1000 for x in line], "--",
                          color=color, label=f"{f['fixed_seconds']} s + {f['ms_per_added_resource']} ms/resource (R² {f['r2']})")
        prog.legend(loc="upper left", fontsize="small")
        prog.set_xlabel("resources planned")
        prog.set_ylabel("pulumi preview, wall seconds")
        prog.set_xlim(left=0)
        prog.set_ylim(bottom=0)
        prog.set_title("Program scale")
    else:
        empty(prog, "Program scale")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def machine() -> str:
    """This machine, for the heading of the results: CPU model and count, memory, kernel."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?")
    kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")))
    return f"{os.cpu_count()} x {model}, {kib / 2**20:.1f} GiB, Linux {os.uname().release}"


def markdown(scale: dict | None, clu: dict | None) -> str:
    out = ["# Benchmark results", "", f"{time.strftime('%Y-%m-%d %H:%M %Z')} on {machine()}.", ""]
    if scale:
        out += ["## Program scale (`pulumi preview`, nothing created)", "",
                "| members | resources | seconds (median, min-max) | ms/resource | first to last step, s | host CPU busy |",
                "|---|---|---|---|---|---|"]
        for r in scale["rows"]:
            if "refused" in r:
                out.append(f"| {r['members']} | refused: {'; '.join(r['refused']['spec'])} | | | | |")
            else:
                s = r["seconds"]
                out.append(f"| {r['members']} | {r['resources']} | {s['median']} ({s['min']}-{s['max']}) | "
                           f"{r['ms_per_resource']} | {r['program_seconds']['median']} | {r['host_cpu_busy']} |")
        out.append("")
        for key, what in (("fit", "wall"), ("fit_program", "first to last step")):
            if f := scale.get(key):
                out.append(f"Linear fit, {what}: {f['fixed_seconds']} s fixed + {f['ms_per_added_resource']} ms per "
                           f"resource, R² {f['r2']}.")
        out.append("")
    if clu:
        out += ["## Cluster (real guests)", "", "| ratio | value | target | |", "|---|---|---|---|"]
        for k, v in clu.get("ratios", {}).items():
            out.append(f"| {k} | {v} | {clu['targets'][k]} | {'missed' if k in clu.get('missed', {}) else ''} |")
        if r := clu.get("rerun"):
            out += ["", f"No-op `pulumi up`: {r['commands_executed']} node commands executed (must be 0)."]
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-cluster", action="store_true", help="only the previews (nothing created)")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    scale_json, cluster_json = RESULTS / "program_scale.json", RESULTS / "cluster.json"
    failed = []
    if subprocess.run([sys.executable, str(ROOT / "bench" / "program_scale.py"), "--repeat", str(args.repeat),
                       "--json", str(scale_json)]).returncode != 0:
        failed.append("program_scale.py")
    if not args.skip_cluster:
        if os.geteuid() != 0:
            sys.exit("the cluster benchmarks need root (libvirt qemu:///system); --skip-cluster runs the rest")
        cluster_json.unlink(missing_ok=True)
        if subprocess.run([sys.executable, str(ROOT / "bench" / "cluster.py"), "--repeat", str(args.repeat),
                           "--json", str(cluster_json)]).returncode != 0:
            failed.append("cluster.py")
    scale = load(scale_json)
    clu = load(cluster_json) if not args.skip_cluster else None
    print()
    if scale:
        print(program_scale.table(scale))
        print()
    if clu:
        print(cluster.tables(clu))
        print()
    chart(scale, clu, RESULTS / "bench.png")
    (RESULTS / "README.md").write_text(markdown(scale, clu))
    print(f"results: {scale_json}, {cluster_json if clu else '(cluster not run)'}, {RESULTS / 'bench.png'}, "
          f"{RESULTS / 'README.md'}")
    if failed:
        sys.exit(f"failed: {', '.join(failed)} (what they measured before failing is in the JSON)")


if __name__ == "__main__":
    main()
