"""Program scale through the real engine (issue 13, item 4): `pulumi preview` of one
stack, the local stack's shape with 3, 8, 16 and 32 members, in a throw-away copy of the
project with its own file backend and key files; nothing is created. Each count is
previewed --repeat times after one warm-up preview: wall seconds of `pulumi preview`
(median, min-max), resources planned (steps, the stack and components included),
milliseconds per resource, and the time from the first step to the last (the program
registering resources and the engine planning them; before it, a fixed start of CLI,
plugins and language host). A least-squares line through the medians of each (seconds =
fixed + per resource x resources) says whether the time is linear in resources.

A count the spec refuses (GFS2 has at most 16 members, spec/rules.py) is previewed once
anyway and recorded with the engine's error, not timed.

    python bench/program_scale.py [--members 3,8,16,32] [--repeat 3] [--json FILE] [--ref REF]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from engine import EngineFailed, Project, engine_run, git_state, host_cpu, busy_since, phase, stack_file_config  # noqa: E402
from spec import SpecError, load_spec  # noqa: E402

LOCAL = ROOT / "stacks" / "Pulumi.local.yaml"


def config_with(members: int) -> dict:
    config = copy.deepcopy(stack_file_config(LOCAL))
    config["members"]["count"] = members
    return config


def refusal(config: dict) -> list[str]:
    """The spec's own objections to CONFIG (empty: the program will run)."""
    try:
        load_spec(config)
    except SpecError as e:
        return [str(i) for i in e.issues]
    return []


def fit(rows: list[dict], key: str = "seconds") -> dict:
    """Least squares through (resources, median of KEY): fixed seconds, ms per added
    resource, and R^2 (1.0: a straight line)."""
    pts = [(r["resources"], r[key]["median"]) for r in rows if key in r]
    if len(pts) < 2:
        return {}
    n = len(pts)
    mx, my = sum(x for x, _ in pts) / n, sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    slope = sum((x - mx) * (y - my) for x, y in pts) / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for _, y in pts)
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in pts)
    return {"fixed_seconds": round(intercept, 2), "ms_per_added_resource": round(1000 * slope, 2),
            "r2": round(1 - ss_res / ss_tot, 4) if ss_tot else 1.0, "points": n}


def first(run) -> float:
    return min(s.start for s in run.steps.values()) - run.started


def last(run) -> float:
    return max(s.start for s in run.steps.values()) - run.started


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2), "n": len(values)}


def measure(project: Project, members: int, repeat: int, logs: Path) -> dict:
    config = config_with(members)
    stack = project.stack(f"scale-{members}", config)
    row: dict = {"members": members}
    if (issues := refusal(config)):
        try:
            engine_run(stack, "preview", logs, f"scale-{members}-refused")
            row["refused"] = {"spec": issues, "engine": "the engine ran the preview anyway"}
        except EngineFailed as e:
            row["refused"] = {"spec": issues, "engine": e.run.errors or [str(e)], "seconds": round(e.run.seconds, 2)}
        return row
    runs = [engine_run(stack, "preview", logs, f"scale-{members}-{i}") for i in range(repeat)]
    seconds = [r.seconds for r in runs]
    resources = runs[0].planned()
    median = statistics.median(seconds)
    row.update({
        "resources": resources,
        "summary": runs[0].summary,
        "seconds": spread(seconds),
        "engine_seconds": [r.engine_seconds for r in runs],
        "ms_per_resource": round(1000 * median / resources, 1),
        # Start of the preview -> first step (CLI, plugins, language host, imports) and
        # -> last step (the program registering resources and the engine planning them).
        "first_step_seconds": round(statistics.median(first(r) for r in runs), 2),
        "last_step_seconds": round(statistics.median(last(r) for r in runs), 2),
        # First to last step: the part that grows with the program.
        "program_seconds": spread([last(r) - first(r) for r in runs]),
        "host_cpu_busy": round(statistics.median(r.host_cpu_busy for r in runs), 2),
    })
    return row


def run(counts: list[int], repeat: int, ref: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="gfs2-scale-") as tmp:
        base = Path(tmp)
        project = Project(base, base / "state", ref=ref)
        # The local stack's key files, throw-away ones in the copy.
        subprocess.run([str(ROOT / "tools" / "local-secrets.sh"), str(project.dir / ".state/secrets/local-dev")],
                       check=True, capture_output=True)
        logs = ROOT / ".state" / "bench" / "logs"
        cpu = host_cpu()
        time.sleep(3)
        idle = busy_since(cpu)
        with phase("warm-up preview (not counted)"):
            engine_run(project.stack("scale-warmup", config_with(counts[0])), "preview", logs, "scale-warmup")
        rows = []
        for n in counts:
            with phase(f"pulumi preview, {n} members, {repeat} times"):
                rows.append(measure(project, n, repeat, logs))
    return {"engine": "pulumi preview (Automation API), nothing created", "git": git_state(), "ref": ref or "working tree",
            "repeat": repeat, "host_cpu_busy_before": idle, "rows": rows, "fit": fit(rows),
            "fit_program": fit(rows, "program_seconds")}


def table(result: dict) -> str:
    lines = [f"Program scale: pulumi preview of one stack (real engine, nothing created; median of {result['repeat']})",
             "members  resources  seconds (min-max)       ms/resource  to 1st step  1st to last step  host cpu"]
    for r in result["rows"]:
        if "refused" in r:
            lines.append(f"{r['members']:>7}  refused: {'; '.join(r['refused']['spec'])}")
            continue
        s = r["seconds"]
        lines.append(f"{r['members']:>7}  {r['resources']:>9}  {s['median']:>6.2f} ({s['min']:.2f}-{s['max']:.2f})"
                     f"       {r['ms_per_resource']:>8.1f}  {r['first_step_seconds']:>9.2f} s  {r['program_seconds']['median']:>14.2f} s"
                     f"  {r['host_cpu_busy']:>6.2f}")
    for key, what in (("fit", "wall"), ("fit_program", "1st to last step")):
        if f := result.get(key):
            lines.append(f"linear fit, {what}: {f['fixed_seconds']} s fixed + {f['ms_per_added_resource']} ms per "
                         f"resource, R^2 {f['r2']} over {f['points']} counts")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", default="3,8,16,32")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--ref", help="preview this git commit instead of the working tree")
    args = parser.parse_args()
    result = run([int(n) for n in args.members.split(",")], args.repeat, args.ref)
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
