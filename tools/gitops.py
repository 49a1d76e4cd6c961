"""The GitOps pipeline's stack discovery: which stacks a change touches, and the
child pipeline (GitLab CI) that previews them on a merge request or updates them on a
merge. Run by the `discover` job of .gitlab-ci.yml:

    python3 tools/gitops.py preview|up CHANGED_FILE... > stacks.gitlab-ci.yml
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# Tenant stacks, and the platform stacks they depend on (applied first).
TENANT_DIR = "stacks"
PLATFORM_DIR = "platform/stacks"


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


def job(verb: str, folder: str, stack: str) -> dict:
    body = {
        "stage": "platform" if folder == PLATFORM_DIR else "tenants",
        "script": [f"tools/ci-stack.sh {verb} {folder} {stack}"],
        # One engine run per stack at a time: a preview waits for a running update.
        "resource_group": f"gfs2-{folder.split('/')[0]}-{stack}",
    }
    if verb == "up":
        body["environment"] = {"name": stack}
    return body


def child_pipeline(verb: str, changed: list[str], root: Path = ROOT) -> dict:
    jobs = {}
    for folder in (PLATFORM_DIR, TENANT_DIR):
        for stack in touched(changed, folder, stacks(root, folder)):
            jobs[f"{verb}:{folder.split('/')[0]}:{stack}"] = job(verb, folder, stack)
    if not jobs:
        jobs["nothing-to-do"] = {"stage": "tenants", "script": ["echo no stack is touched by this change"]}
    return {"stages": ["platform", "tenants"], **jobs}


def main(argv: list[str]) -> None:
    verb, changed = argv[1], argv[2:]
    if verb not in ("preview", "up"):
        sys.exit("usage: gitops.py preview|up CHANGED_FILE...")
    yaml.safe_dump(child_pipeline(verb, changed), sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main(sys.argv)
