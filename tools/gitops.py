"""The GitOps pipeline's stack runs: which stacks a change touches, and running
tools/ci-stack.sh on each of them (platform stacks first), with a summary at the end.
Run by the `preview` (merge request) and `up` (default branch) jobs of .gitlab-ci.yml:

    python3 tools/gitops.py preview|up BASE_SHA HEAD_SHA   # run the touched stacks
    python3 tools/gitops.py plan CHANGED_FILE...            # only list them

One job runs every touched stack in turn rather than a child pipeline of one job per
stack: a child pipeline's failure reaches the parent only through GitLab's
`strategy: depend`, which gitlab-ci-local (the pipeline's test runner here) does not
honour, so a failing stack would have left the pipeline green there.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Tenant stacks, and the platform stacks they depend on (run first).
TENANT_DIR = "stacks"
PLATFORM_DIR = "platform/stacks"
FOLDERS = (PLATFORM_DIR, TENANT_DIR)


def stacks(root: Path, folder: str) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (root / folder).glob("Pulumi.*.yaml"))


def touched(changed: list[str], folder: str, names: list[str]) -> list[str]:
    """Stacks of FOLDER a change touches: its own file, or any shared code (which every
    stack runs); a platform also by any tenant file (its registry is read from them).
    Deleting a stack file touches nothing: removing a tenant is a deliberate
    `make destroy`, never a side effect of a merge."""
    own = {f"{folder}/Pulumi.{n}.yaml": n for n in names}
    shared = [f for f in changed if f not in own and not f.startswith(("stacks/", "platform/stacks/")) and _is_code(f)]
    tenant_files = folder == PLATFORM_DIR and any(f.startswith(f"{TENANT_DIR}/") for f in changed)
    if shared or tenant_files:
        return names
    return [own[f] for f in changed if f in own]


def _is_code(path: str) -> bool:
    """Files whose change can alter what a stack does (docs and tests cannot)."""
    return not path.startswith(("tests/", "bench/", ".ci/")) and not path.endswith(".md")


def plan(changed: list[str] | None, root: Path = ROOT) -> list[tuple[str, str]]:
    """(folder, stack) of every stack to run, platform stacks first; None: every stack."""
    out = []
    for folder in FOLDERS:
        names = stacks(root, folder)
        out += [(folder, s) for s in (names if changed is None else touched(changed, folder, names))]
    return out


def changed_files(base: str, head: str, root: Path = ROOT) -> list[str] | None:
    """Files added or modified from BASE to HEAD (deletions left out); None when BASE is
    not known (a new branch: GitLab gives 0000000), which touches every stack."""
    if not base or set(base) == {"0"}:
        return None
    # CI clones are shallow: fetch the base if this clone does not have it.
    have = subprocess.run(["git", "cat-file", "-e", f"{base}^{{commit}}"], cwd=root, capture_output=True)
    if have.returncode != 0:
        subprocess.run(["git", "fetch", "--depth=50", "origin", base], cwd=root, capture_output=True)
    diff = subprocess.run(["git", "diff", "--name-only", "--diff-filter=d", base, head],
                          cwd=root, capture_output=True, text=True)
    if diff.returncode != 0:
        return None
    return diff.stdout.split()


@dataclass
class Result:
    folder: str
    stack: str
    outcome: str  # ok, FAILED, skipped
    seconds: float = 0.0


def run(verb: str, base: str, head: str, root: Path = ROOT) -> int:
    changed = changed_files(base, head, root)
    targets = plan(changed, root)
    if changed is None:
        print(f"gitops: base {base or '(none)'} is not known here: every stack is touched")
    else:
        print(f"gitops: {len(changed)} changed file(s) from {base[:12]} to {head[:12]}: {' '.join(changed)}")
    print(f"gitops: {verb} of {len(targets)} stack(s): {' '.join(f'{f}/{s}' for f, s in targets) or 'none'}",
          flush=True)
    results: list[Result] = []
    for folder, stack in targets:
        # Tenants read the platform's outputs: none is updated after a platform failed.
        if verb == "up" and folder == TENANT_DIR and any(r.folder == PLATFORM_DIR and r.outcome != "ok" for r in results):
            results.append(Result(folder, stack, "skipped"))
            continue
        print(f"\n===== {verb} {folder}/{stack} =====", flush=True)
        start = time.monotonic()
        rc = subprocess.run([str(root / "tools" / "ci-stack.sh"), verb, folder, stack], cwd=root).returncode
        results.append(Result(folder, stack, "ok" if rc == 0 else "FAILED", time.monotonic() - start))
    failed = [r for r in results if r.outcome != "ok"]
    print(f"\n===== gitops {verb}: summary =====")
    for r in results:
        print(f"  {verb:7} {r.folder}/{r.stack:24} {r.outcome:7} {r.seconds:6.1f} s")
    if not results:
        print("  no stack is touched by this change")
    print(f"gitops: {len(results) - len(failed)} of {len(results)} stack(s) ok"
          + (f"; not ok: {' '.join(f'{r.folder}/{r.stack}' for r in failed)}" if failed else ""))
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[1] == "plan":
        for folder, stack in plan(argv[2:]):
            print(f"{folder}/{stack}")
        return 0
    if len(argv) != 4 or argv[1] not in ("preview", "up"):
        sys.exit("usage: gitops.py preview|up BASE_SHA HEAD_SHA | gitops.py plan CHANGED_FILE...")
    return run(argv[1], argv[2], argv[3])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
