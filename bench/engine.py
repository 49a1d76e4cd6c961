"""Bench-only helpers around the real Pulumi engine (Automation API): a copy of the
project with its own file backend, engine runs with every step timed from the event
stream, the resource graph of a deployment, host CPU, and SSH to guests.

Nothing here is imported by the product, and nothing here imports tests/.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional

import pulumi.automation as auto
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "gfs2-cluster"
# What the program needs (tests/engine copies the same).
PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "components", "spec", "render", "image", "platform")
COMMAND_TYPES = ("command:remote:Command", "command:local:Command")
# Pulumi's marker of a secret value in a deployment (with --show-secrets: "plaintext").
SECRET_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
NOOP_OPS = ("same", "read")


def stamp() -> str:
    return time.strftime("%H:%M:%S")


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """One line when a long phase starts and one when it ends (or fails)."""
    print(f"bench {stamp()} {name}: start", flush=True)
    t0 = time.monotonic()
    try:
        yield
    except BaseException:
        print(f"bench {stamp()} {name}: FAILED after {time.monotonic() - t0:.0f} s", flush=True)
        raise
    print(f"bench {stamp()} {name}: done in {time.monotonic() - t0:.1f} s", flush=True)


def git_state() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty_files": git("status", "--porcelain").splitlines()}


# --- host CPU -------------------------------------------------------------------------

def host_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all the host's CPUs, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_since(start: tuple[int, int]) -> float:
    """Share of the host's CPU time busy since START: near 1.0, every core was working,
    so more parallel work could only queue."""
    busy, total = host_cpu()
    return round((busy - start[0]) / max(1, total - start[1]), 2)


# --- a copy of the project with its own backend --------------------------------------

class TimedCommand(auto.PulumiCommand):
    """The CLI, with the wall time of its last run per verb: Stack.up also runs
    `stack output` and `stack history` afterwards, which are not `pulumi up`."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[str, float] = {}

    def run(self, args, cwd, additional_env, on_output=None, on_error=None):
        # Read before the run: PulumiCommand.run inserts --non-interactive into ARGS.
        verb = next(a for a in args if not a.startswith("-"))
        t0 = time.monotonic()
        try:
            return super().run(args, cwd, additional_env, on_output, on_error)
        finally:
            self.seconds[verb] = time.monotonic() - t0


class Project:
    """The program copied to FOLDER/project (the working tree, or git REF), run against
    the file backend in STATE (kept between runs, so a failed run can be destroyed by
    the next). Stack files live only in the copy; each stack's encryption salt is kept
    in STATE beside the backend."""

    def __init__(self, folder: Path, state: Path, ref: Optional[str] = None):
        self.dir = folder / "project"
        self.dir.mkdir(parents=True)
        if ref:
            archive = subprocess.run(["git", "archive", "--format=tar", ref, *PROJECT_FILES], cwd=ROOT,
                                     capture_output=True, check=True).stdout
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(self.dir, filter="data")
        else:
            for name in PROJECT_FILES:
                src = ROOT / name
                (shutil.copytree if src.is_dir() else shutil.copy)(src, self.dir / name)
        (self.dir / "stacks").mkdir()
        (self.dir / ".venv").symlink_to(ROOT / ".venv")
        self.state = state
        (state / "backend").mkdir(parents=True, exist_ok=True)
        passphrase = state / "passphrase"
        if not passphrase.exists():
            passphrase.write_text(base64.b64encode(os.urandom(24)).decode())
            passphrase.chmod(0o600)
        self.run_id = f"bench-{int(time.time())}-{os.getpid()}"
        # Set, not inherited: the user's own passphrase or backend must not leak in.
        self.env = {
            "PULUMI_BACKEND_URL": f"file://{state / 'backend'}",
            "PULUMI_CONFIG_PASSPHRASE": passphrase.read_text().strip(),
            "PULUMI_CONFIG_PASSPHRASE_FILE": "",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            # tools/stale_run.py finds the processes of a killed run by this.
            "GFS2_RUN_ID": self.run_id,
        }

    def stack(self, name: str, config: dict) -> auto.Stack:
        """Stack NAME with CONFIG (keys without the project prefix), created if new."""
        salt_file = self.state / f"{name}.salt"
        doc = {"config": {f"{PROJECT}:{k}": v for k, v in config.items()}}
        if salt_file.exists():
            doc["encryptionsalt"] = salt_file.read_text().strip()
        stack_file = self.dir / "stacks" / f"Pulumi.{name}.yaml"
        stack_file.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.clear_stale(name)
        ws = auto.LocalWorkspace(work_dir=str(self.dir), env_vars=self.env, pulumi_command=TimedCommand())
        stack = auto.Stack.create_or_select(name, ws)
        salt = yaml.safe_load(stack_file.read_text()).get("encryptionsalt")
        if salt:
            salt_file.write_text(salt)
        return stack

    def clear_stale(self, name: str) -> None:
        """A killed earlier run of this stack: its lock and leftover processes."""
        run_file = self.state / f"{name}.run"
        env = {**os.environ, **self.env}
        subprocess.run([sys.executable, str(ROOT / "tools" / "stale_run.py"), str(run_file), name], env=env, check=True)
        run_file.write_text(f"{self.run_id} {os.getpid()}\n")


def stack_file_config(path: Path) -> dict:
    """The project's config in a stack file, without the project prefix (the committed
    file when the working tree has none at the moment)."""
    if path.exists():
        text = path.read_text()
    else:
        text = subprocess.run(["git", "show", f"HEAD:{path.relative_to(ROOT)}"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout
    data = yaml.safe_load(text) or {}
    prefix = PROJECT + ":"
    return {k[len(prefix):]: v for k, v in (data.get("config") or {}).items() if k.startswith(prefix)}


# --- engine runs ----------------------------------------------------------------------

@dataclass
class Step:
    urn: str
    type: str
    op: str
    start: float  # this process's clock (time.time) when the step's first event came
    end: Optional[float] = None
    engine_start: int = 0  # the engine's own stamps: whole seconds
    engine_end: int = 0
    failed: bool = False
    # The stack and components "run" until their last child is done: not work.
    custom: bool = True

    @property
    def seconds(self) -> Optional[float]:
        return None if self.end is None else round(self.end - self.start, 2)

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


@dataclass
class Run:
    """One engine operation: every step with its op and duration, and the host's CPU."""

    verb: str
    seconds: float = 0.0  # the `pulumi VERB` process (all of it, with an Automation API call)
    started: float = 0.0
    steps: dict[str, Step] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    engine_seconds: Optional[int] = None
    host_cpu_busy: float = 0.0
    errors: list[str] = field(default_factory=list)
    log: str = ""

    def changed(self) -> dict[str, str]:
        return {u: s.op for u, s in self.steps.items() if s.op not in NOOP_OPS}

    def commands_run(self) -> list[str]:
        return sorted(u for u in self.changed() if self.steps[u].type in COMMAND_TYPES)

    def planned(self) -> int:
        """Resources the operation planned a step for (the stack itself included)."""
        return len(self.steps)

    def record(self, top: int = 15) -> dict:
        """The JSON form: totals and the longest steps."""
        timed = sorted((s for s in self.steps.values() if s.custom and s.seconds is not None), key=lambda s: -s.seconds)
        return {
            "wall_seconds": round(self.seconds, 1),
            "engine_seconds": self.engine_seconds,
            "host_cpu_busy": self.host_cpu_busy,
            "summary": self.summary,
            "steps": len(self.steps),
            "sum_of_step_seconds": round(sum(s.seconds for s in timed), 1),
            "longest_steps": [{"name": s.name, "type": s.type, "op": s.op, "seconds": s.seconds} for s in timed[:top]],
            "log": self.log,
        }

    def durations(self) -> dict[str, float]:
        """Seconds of each custom resource's step."""
        return {u: s.seconds for u, s in self.steps.items() if s.custom and s.seconds is not None}


class EngineFailed(RuntimeError):
    """The engine operation failed; .run holds what it did up to then."""

    def __init__(self, run: Run, error: Exception):
        errors = "\n".join(run.errors) or str(error)[-3000:]
        super().__init__(f"pulumi {run.verb} failed after {run.seconds:.0f} s (log {run.log}):\n{errors}")
        self.run = run


def engine_run(stack: auto.Stack, verb: str, log_dir: Path, label: str, **kw) -> Run:
    """stack.VERB(**kw) with its output in LOG_DIR/LABEL.log and each step timed: from its
    ResourcePreEvent to its ResOutputsEvent (or ResOpFailedEvent), by this process's
    clock on receipt (the engine's own stamps are whole seconds; kept beside)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{label}.log"
    run = Run(verb, log=str(log_path))

    def on_event(event: auto.EngineEvent) -> None:
        now = time.time()
        if (pre := event.resource_pre_event) is not None and pre.metadata is not None:
            m = pre.metadata
            state = m.new or m.old
            custom = bool(state.custom) if state is not None else m.type != "pulumi:pulumi:Stack"
            run.steps[m.urn] = Step(m.urn, m.type, m.op.value, now, engine_start=event.timestamp, custom=custom)
        elif (out := event.res_outputs_event) is not None and out.metadata is not None:
            if (s := run.steps.get(out.metadata.urn)) is not None:
                s.end, s.engine_end = now, event.timestamp
        elif (bad := event.res_op_failed_event) is not None and bad.metadata is not None:
            if (s := run.steps.get(bad.metadata.urn)) is not None:
                s.end, s.engine_end, s.failed = now, event.timestamp, True
        elif (diag := event.diagnostic_event) is not None and diag.severity == "error":
            run.errors.append(f"{diag.urn or ''}: {diag.message.strip()}")
        elif (summary := event.summary_event) is not None:
            run.engine_seconds = summary.duration_seconds

    cpu = host_cpu()
    cli = stack.workspace.pulumi_command
    run.started = time.time()
    t0 = time.monotonic()
    with phase(f"pulumi {verb} {label}"), open(log_path, "w") as log:
        failure = None
        try:
            result = getattr(stack, verb)(on_output=lambda line: log.write(line + "\n"), on_event=on_event,
                                          color="never", **kw)
        except auto.CommandError as e:
            failure = e
        finally:
            # The CLI process alone (Stack.up runs two more CLI commands after it); only
            # a run stopped before the CLI started has no time of its own.
            run.seconds = cli.seconds.pop(verb, time.monotonic() - t0)
            run.host_cpu_busy = busy_since(cpu)
            if run.errors:
                log.write("\n".join(["", "errors:", *run.errors, ""]))
        if failure is not None:
            raise EngineFailed(run, failure) from None
    summary = getattr(result, "change_summary", None)
    if summary is None and getattr(result, "summary", None) is not None:
        summary = result.summary.resource_changes
    run.summary = {str(k.value if hasattr(k, "value") else k): v for k, v in (summary or {}).items()}
    return run


# --- the deployment's resource graph --------------------------------------------------

def reveal(value):
    """A deployment value with its secrets opened. Needs an export with --show-secrets
    (auto.Stack.export_stack runs `pulumi stack export --show-secrets`)."""
    if isinstance(value, dict) and value.get(SECRET_KEY) == SECRET_SIG:
        if "plaintext" not in value:
            raise ValueError("the deployment holds an encrypted secret: export it with --show-secrets")
        return reveal(json.loads(value["plaintext"]))
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


@dataclass
class Node:
    urn: str
    type: str
    inputs: dict
    parent: str
    provider: str
    deps: frozenset

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    @property
    def is_command(self) -> bool:
        return self.type in COMMAND_TYPES

    @property
    def is_libvirt(self) -> bool:
        return self.type.startswith("libvirt:")


def graph(deployment: dict) -> list[Node]:
    """The deployment's resources in its own order, which the engine keeps topological
    (each after what it depends on). Secrets stay as they are (see reveal)."""
    nodes = []
    for r in deployment.get("resources") or []:
        if r.get("delete") or r.get("pendingReplacement"):
            continue
        provider = (r.get("provider") or "").rsplit("::", 1)[0]
        deps = set(r.get("dependencies") or [])
        for urns in (r.get("propertyDependencies") or {}).values():
            deps.update(urns)
        if provider:
            deps.add(provider)
        nodes.append(Node(r["urn"], r["type"], r.get("inputs") or {}, r.get("parent") or "", provider, frozenset(deps)))
    present, seen = {n.urn for n in nodes}, set()
    for n in nodes:
        missing = [d for d in n.deps if d in present and d not in seen]
        if missing:
            raise ValueError(f"deployment order: {n.urn} before its dependencies {missing}")
        seen.add(n.urn)
    return nodes


def closure(nodes: list[Node], roots: Iterable[str]) -> list[Node]:
    """ROOTS with everything they need to exist first (dependencies, providers and
    parents, recursively), in deployment order: the --target list that creates them."""
    by_urn = {n.urn: n for n in nodes}
    want: set[str] = set()
    todo = list(roots)
    while todo:
        urn = todo.pop()
        if urn in want or urn not in by_urn:
            continue
        want.add(urn)
        n = by_urn[urn]
        todo.extend(n.deps)
        if n.parent:
            todo.append(n.parent)
    return [n for n in nodes if n.urn in want]


def critical_path(nodes: list[Node], seconds: dict[str, float]) -> tuple[float, list[dict]]:
    """The longest chain of steps through the dependencies, by their durations: the
    least wall time any amount of parallelism could give this build. The chain as
    {name, seconds} per step, first to last."""
    best: dict[str, tuple[float, Optional[str]]] = {}
    for n in nodes:  # deployment order is topological
        before = max(((best[d][0], d) for d in n.deps if d in best), default=(0.0, None))
        best[n.urn] = (before[0] + seconds.get(n.urn, 0.0), before[1])
    if not best:
        return 0.0, []
    urn = max(best, key=lambda u: best[u][0])
    total, path = best[urn][0], []
    while urn is not None:
        path.append({"name": urn.rsplit("::", 1)[-1], "seconds": round(seconds.get(urn, 0.0), 2)})
        urn = best[urn][1]
    return round(total, 1), path[::-1]


# --- node scripts without the engine --------------------------------------------------

SSH_DIAL_FAILURE = re.compile(
    r"ssh: connect to host|Connection (refused|timed out|closed|reset)|No route to host|"
    r"kex_exchange_identification|Permission denied \(publickey|Could not resolve")


class NodeCommands:
    """Runs a command resource's create (or delete) as its provider would, from its
    inputs in the deployment: remote ones over OpenSSH with the same key, stdin and
    dial retries (pulumi-command: dialErrorLimit tries, default 10, 15 s each, 0.1 s
    apart growing to 5 s), local ones with their interpreter in the project folder."""

    def __init__(self, workdir: Path, keys: Path, env: dict):
        self.workdir, self.keys, self.env = workdir, keys, env
        keys.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _key(self, text: str) -> Path:
        path = self.keys / ("key-" + hashlib.sha256(text.encode()).hexdigest()[:12])
        if not path.exists():
            path.touch(0o600)
            path.write_text(text if text.endswith("\n") else text + "\n")
        return path

    def _ssh_argv(self, conn: dict) -> list[str]:
        opts = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", f"ConnectTimeout={conn.get('perDialTimeout', 15)}",
                # A guest that reboots under a command (fenced) ends it instead of hanging it.
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
                "-T", "-p", str(int(conn.get("port", 22)))]
        if conn.get("privateKey"):
            opts += ["-i", str(self._key(conn["privateKey"]))]
        if proxy := conn.get("proxy"):
            inner = [*self._ssh_argv({**proxy, "proxy": None})[:-1], "-W", "%h:%p",
                     f"{proxy.get('user', 'root')}@{proxy['host']}"]
            opts += ["-o", "ProxyCommand=" + shlex.join(inner)]
        return ["ssh", *opts, f"{conn.get('user', 'root')}@{conn['host']}"]

    def run(self, node: Node, which: str = "create", timeout: float = 3600) -> dict:
        inputs = reveal(node.inputs)
        text = inputs.get(which)
        if not text:
            return {"name": node.name, "seconds": 0.0, "skipped": f"no {which}"}
        stdin = (inputs.get("stdin") or "").encode()
        t0 = time.monotonic()
        dials = 0
        if node.type == "command:local:Command":
            argv = [*(inputs.get("interpreter") or ["/bin/sh", "-c"]), text]
            env = {**os.environ, **self.env, **(inputs.get("environment") or {})}
            p = subprocess.run(argv, input=stdin, capture_output=True, cwd=inputs.get("dir") or self.workdir,
                               env=env, timeout=timeout)
        else:
            conn = inputs["connection"]
            limit = int(conn.get("dialErrorLimit", 10))
            delay = 0.1
            while True:
                dials += 1
                p = subprocess.run([*self._ssh_argv(conn), text], input=stdin, capture_output=True, timeout=timeout)
                dial_failed = p.returncode == 255 and not p.stdout and SSH_DIAL_FAILURE.search(p.stderr.decode(errors="replace"))
                if not dial_failed or (limit != -1 and dials >= limit):
                    break
                time.sleep(delay)
                delay = min(5.0, delay * 1.5)
        seconds = round(time.monotonic() - t0, 2)
        out = (p.stdout + p.stderr).decode(errors="replace")
        if p.returncode != 0:
            raise RuntimeError(f"{node.name} {which}: exit {p.returncode} after {seconds} s ({dials} dials)\n{out[-3000:]}")
        last = (p.stdout.decode(errors="replace").strip().splitlines() or [""])[-1]
        return {"name": node.name, "type": node.type, "seconds": seconds, "dials": dials, "result": last[-200:]}


# --- guests ---------------------------------------------------------------------------

@dataclass
class Guest:
    name: str
    address: str
    key: Path

    def run(self, script: str, check: bool = True, timeout: float = 600) -> str:
        argv = ["ssh", "-F", "/dev/null", "-i", str(self.key), "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=10", "-T", f"root@{self.address}",
                "bash -c " + shlex.quote("set -euo pipefail\n" + script)]
        p = subprocess.run(argv, capture_output=True, timeout=timeout)
        out = p.stdout.decode(errors="replace")
        if check and p.returncode != 0:
            raise RuntimeError(f"{self.name}: exit {p.returncode}\n{out}{p.stderr.decode(errors='replace')}")
        return out
