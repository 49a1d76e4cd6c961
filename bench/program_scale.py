"""Program scale: how long the program takes to evaluate N tenants of 8 members under
Pulumi mocks, per registered resource (does it stay linear?). Each evaluation runs twice:
as Python runs it, and with the cyclic garbage collector paused, which shows how much of
any growth per resource is the collector walking the ever larger set of live resources.

    python bench/program_scale.py [--tenants 1,10,50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import pulumi

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from components.stack_input import Secrets  # noqa: E402
from components.tenant_cluster import ImageFiles, TenantCluster, TenantClusterArgs  # noqa: E402
from spec import build, load_spec  # noqa: E402
from spec.stack_file import read_stack_file  # noqa: E402
from spec.vocabulary import SECRET_KEY_NAMES  # noqa: E402
from program_graph import record  # noqa: E402

MEMBERS = 8
SECRETS = SECRET_KEY_NAMES


def tenant_config(i: int) -> dict:
    """globex-prod's shape, as tenant number i with 8 members on its own VLAN."""
    config = copy.deepcopy(read_stack_file(ROOT / "stacks" / "Pulumi.globex-prod.yaml"))
    config["tenant"] = f"t{i}"
    config["network"].update(vlanId=100 + i, cidr=f"10.{i // 250}.{i % 250}.0/24")
    config["members"]["count"] = MEMBERS
    for vg in config["storage"]["volumeGroups"]:
        for lv in vg["logicalVolumes"]:
            lv["filesystem"].pop("journals", None)
    config.pop("platform")
    return config


def evaluate(tenants: int) -> tuple[float, int]:
    """Seconds to evaluate the program for that many tenants, and resources registered."""
    registered = record("bench")
    secret = pulumi.Output.secret("x")
    secrets = Secrets(secret, secret, secret, "ssh-ed25519 AAAA bench")
    image = ImageFiles("/images/base.qcow2", "/images/vmlinux", "/images/initrd")
    topos = [build(load_spec(tenant_config(i), SECRETS)) for i in range(tenants)]

    @pulumi.runtime.test
    def program():
        for topo in topos:
            TenantCluster(topo.names.stack_id, TenantClusterArgs(topo, secrets, image))

    started = time.perf_counter()
    program()
    return time.perf_counter() - started, len(registered)


def evaluate_without_gc(tenants: int) -> float:
    gc.collect()
    gc.disable()
    try:
        return evaluate(tenants)[0]
    finally:
        gc.enable()


def run(counts: list[int], repeat: int) -> list[dict]:
    rows = []
    for n in counts:
        times, without_gc, resources = [], [], 0
        for _ in range(repeat):
            seconds, resources = evaluate(n)
            times.append(seconds)
            without_gc.append(evaluate_without_gc(n))
        median = statistics.median(times)
        rows.append({
            "tenants": n,
            "members": n * MEMBERS,
            "resources": resources,
            "seconds_median": round(median, 3),
            "seconds_min": round(min(times), 3),
            "seconds_max": round(max(times), 3),
            "ms_per_resource": round(1000 * median / resources, 3),
            "ms_per_resource_without_gc": round(1000 * statistics.median(without_gc) / resources, 3),
            "repeat": repeat,
        })
    return rows


def table(rows: list[dict]) -> str:
    lines = ["tenants  members  resources  seconds (median, min-max)  ms/resource  ms/resource, GC paused"]
    for r in rows:
        lines.append(
            f"{r['tenants']:>7}  {r['members']:>7}  {r['resources']:>9}  "
            f"{r['seconds_median']:>7.2f} ({r['seconds_min']:.2f}-{r['seconds_max']:.2f})      {r['ms_per_resource']:>8.2f}"
            f"  {r['ms_per_resource_without_gc']:>20.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", default="1,10,50")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = run([int(n) for n in args.tenants.split(",")], args.repeat)
    print("Program scale (Pulumi mocks, tenants of 8 members)")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
