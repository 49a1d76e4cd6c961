"""A throw-away copy of the project for the real Pulumi CLI: its own file backend, its
own stack config, and a program (and policy pack) the test may patch freely.

Used by tests/engine and tests/policy (which puts tests/engine on sys.path for it; not
a package named `engine`, which bench/engine.py would shadow)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, STACKS
from tools.stale_run import processes_with

PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "components", "spec", "render", "image", "platform", "policy")
PACK = "gfs2-cluster"
REGISTRY_POLICY = "tenants-do-not-share-vlans-or-fence-ports"
# What the engine prints for every value a preview cannot know yet.
UNKNOWN_SENTINELS = frozenset(
    {
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # string
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # bool
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
    }
)


# (test, preview arguments, exit status, seconds) of every preview run in this session.
TIMINGS: list[tuple[str, str, int, float]] = []


@pytest.fixture(scope="module", autouse=False)
def preview_timings():
    """Use with autouse in a test module: its previews' durations, printed at its end."""
    start = len(TIMINGS)
    yield
    mine = TIMINGS[start:]
    if mine:
        print(f"\n===== {len(mine)} previews, {sum(t[3] for t in mine):.1f} s in all =====")
        for test, args, rc, seconds in mine:
            print(f"{seconds:6.1f} s  exit {rc}  {test}  pulumi preview {args}")


def point_here(hypervisor: dict) -> None:
    """A remote hypervisor of a stack file, previewed against this machine's libvirtd
    (README: Previewing a remote stack here); Xen guests as QEMU ones."""
    hypervisor["uri"] = "qemu:///system"
    hypervisor["domainType"] = "qemu"


@dataclass
class Preview:
    """One `pulumi preview`: what it printed, how it ended, how long it took."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    events: list[dict] = field(default_factory=list)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def planned(self) -> list[tuple[str, str]]:
        """(type, name) of every resource the preview plans to create (--diff output)."""
        return re.findall(r"^\s*\+ (\S+): \(create\)[^\n]*\n\s*\[urn=urn:pulumi:\S*?::([^:\]]+)\]$", self.stdout, re.M)

    def count(self, type_: str) -> int:
        return sum(1 for t, _ in self.planned() if t == type_)

    def summary_creates(self) -> int:
        found = re.search(r"^Resources:\n\s+\+ (\d+) to create$", self.stdout, re.M)
        assert found, "the preview printed no resource summary"
        return int(found.group(1))

    def violations(self) -> list[tuple[str, str, str]]:
        """(enforcement level, policy, message) of every policy line the preview prints:
        with --diff, `PACK@vX [level]  policy  (urn)description` and the message below."""
        return re.findall(rf"^\s+{PACK}@v[\d.]+ \[(\w+)\]\s+(\S+)\s+\([^)\n]*\).*\n(.*)$", self.stdout, re.M)

    def packs_run(self) -> list[tuple[str, str]]:
        """(name|kind|path, version) of the table `Policy Packs run:` (paths shortened)."""
        table = re.search(r"^Policy Packs run:\n\s+Name\s+Version\n((?:\s+\S+\s+\S+\n?)+)", self.stdout, re.M)
        return re.findall(r"^\s+(\S+)\s+(\S+)$", table.group(1), re.M) if table else []

    # --- the streaming JSON events (preview --json with PULUMI_ENABLE_STREAMING_JSON_PREVIEW)

    def of(self, kind: str) -> list[dict]:
        return [e[kind] for e in self.events if kind in e]

    def stack_outputs(self) -> dict:
        for e in self.of("resOutputsEvent"):
            new = e["metadata"].get("new") or {}
            if new.get("type") == "pulumi:pulumi:Stack" and new.get("outputs"):
                return new["outputs"]
        return {}


class Project:
    """A copy of the project whose program, policy pack and stack config the test may
    change freely; `tenants=True` also copies the tenant stack files (pointed at this
    machine), which the platform reads its registry from."""

    def __init__(self, base: Path, stack: str, subproject: str = "", tenants: bool = False):
        top = base / "project"
        self.base = base
        self.stack = stack
        top.mkdir()
        for name in PROJECT_FILES:
            src = ROOT / name
            (shutil.copytree if src.is_dir() else shutil.copy)(src, top / name)
        (top / "stacks").mkdir()
        if not subproject:
            shutil.copy(STACKS / f"Pulumi.{stack}.yaml", top / "stacks")
        if tenants:
            for path in sorted(STACKS.glob("Pulumi.*.yaml")):
                data = yaml.safe_load(path.read_text())
                if data["config"].get("gfs2-cluster:platform"):
                    for hv in data["config"]["gfs2-cluster:hypervisors"]:
                        point_here(hv)
                (top / "stacks" / path.name).write_text(yaml.safe_dump(data, sort_keys=False))
        (top / ".venv").symlink_to(ROOT / ".venv")
        self.top = top
        self.dir = top / subproject
        self.env = dict(
            os.environ,
            PULUMI_BACKEND_URL=f"file://{base / 'backend'}",
            PULUMI_CONFIG_PASSPHRASE="engine-test",
        )
        self.env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
        self.env.pop("PULUMI_ENABLE_STREAMING_JSON_PREVIEW", None)
        (base / "backend").mkdir()
        self.pulumi("stack", "init", stack, select_stack=False)
        for line in (self.dir / "stacks" / f"Pulumi.{stack}.yaml").read_text().splitlines():
            if ".state/secrets/" in line:
                folder = self.dir / line.split(":", 1)[1].strip().rsplit("/", 1)[0]
                subprocess.run([ROOT / "tools" / "local-secrets.sh", folder], check=True, capture_output=True)

    # --- the CLI ---------------------------------------------------------------------

    def pulumi(self, *args: str, check: bool = True, select_stack: bool = True, env: dict | None = None,
               input: str | None = None) -> subprocess.CompletedProcess:
        stack = ["--stack", self.stack] if select_stack else []
        result = subprocess.run(
            ["pulumi", *args, *stack, "--non-interactive"],
            cwd=self.dir,
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=600,
        )
        self._end_leftover_processes()
        if check and result.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def _end_leftover_processes(self) -> None:
        """A preview stopped by a missing config value leaves its language host running:
        end, by PID, whatever still carries this copy's own backend once the CLI is done."""
        for pid in processes_with(f"PULUMI_BACKEND_URL={self.env['PULUMI_BACKEND_URL']}"):
            if pid != os.getpid():
                try:
                    os.kill(pid, 15)
                except ProcessLookupError:
                    continue

    def set(self, path: str, value: str, project: str = "gfs2-cluster") -> None:
        self.pulumi("config", "set", "--path", f"{project}:{path}", value)

    def give_throwaway_secrets(self) -> None:
        """Remote example stacks take secrets from CI's store; here, throw-away ones,
        on stdin as ci-stack.sh gives them."""
        key = self.base / "id"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        values = {
            "sshPrivateKey": key.read_text(),
            "fenceKey": base64.b64encode(os.urandom(512)).decode(),
            "clusterAuthKey": base64.b64encode(os.urandom(256)).decode(),
        }
        for name, value in values.items():
            self.pulumi("config", "set", "--secret", f"gfs2-cluster:{name}", input=value)

    def point_hypervisors_here(self) -> None:
        """Remote hypervisors are previewed against this machine's libvirtd, Xen guests
        as QEMU ones, and without their platform stack, which is not in this backend
        (README: Previewing a remote stack here)."""
        self.set("hypervisors[0].uri", "qemu:///system")
        self.set("hypervisors[0].domainType", "qemu")
        self.pulumi("config", "rm", "gfs2-cluster:platform")

    def prepared(self) -> "Project":
        """An example stack ready for a full preview on this machine."""
        if self.stack != "local":
            self.give_throwaway_secrets()
            self.point_hypervisors_here()
        return self

    # --- the copied program ----------------------------------------------------------

    def patch(self, relpath: str, old: str, new: str) -> None:
        """Replace OLD (which must occur exactly once) in the copy's RELPATH: a refactor
        that removes OLD fails the test instead of turning it into a no-op."""
        path = self.top / relpath
        text = path.read_text()
        assert text.count(old) == 1, f"{relpath}: expected exactly one {old!r}, found {text.count(old)}"
        path.write_text(text.replace(old, new))
        print(f"patched {relpath}: {old.strip()!r} -> {new.strip()!r}")

    def pack_config(self, registry: list[dict]) -> Path:
        """The policy pack's config file, as tools/ci-stack.sh writes it from the
        platform's `registry` output."""
        path = self.base / "policy-config.json"
        path.write_text(json.dumps({REGISTRY_POLICY: {"registry": registry}}, indent=1))
        return path

    def preview(self, *args: str, events: bool = False) -> Preview:
        """`pulumi preview --diff` (what CI runs), printed whole with its duration.
        events=True: the streaming JSON events instead (preview --json)."""
        extra = ("--json",) if events else ("--diff",)
        env = {"PULUMI_ENABLE_STREAMING_JSON_PREVIEW": "1"} if events else None
        start = time.monotonic()
        result = self.pulumi("preview", *extra, *args, check=False, env=env)
        preview = Preview((*extra, *args), result.returncode, result.stdout, result.stderr, time.monotonic() - start)
        if events:
            preview.events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        where = f"{self.dir.relative_to(self.top.parent)}"
        print(f"\n===== pulumi preview {' '.join(preview.args)} --stack {self.stack} ({where}) =====")
        if events:
            print(f"{len(preview.events)} JSON events; the policy events, warnings and errors:")
            for e in preview.events:
                if any(k.startswith("policy") and k not in ("policyRemediateSummaryEvent", "policyAnalyzeSummaryEvent") for k in e):
                    print(json.dumps(e))
                elif e.get("diagnosticEvent", {}).get("severity") in ("warning", "error"):
                    print(json.dumps(e))
            print(result.stderr, end="")
        else:
            print(preview.output, end="")
        print(f"===== exit {preview.returncode}, {preview.seconds:.1f} s =====")
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0].rsplit("::", 1)[-1]
        shown = " ".join(preview.args).replace(str(self.top), "<copy>").replace(str(self.base), "<tmp>")
        TIMINGS.append((test, f"{shown} --stack {self.stack}", preview.returncode, preview.seconds))
        return preview
