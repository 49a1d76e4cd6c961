"""Runs __main__.py under Pulumi mocks and records what it registers: every resource
with its type, inputs (secrets in Pulumi's own marked form, {SECRET_MARK: SECRET_SIG,
"value": ...}, not hidden), parent, dependencies and options.

Used by the wiring tests, the policy tests, the benchmarks and the graph runner. It is
not an engine: nothing is created.
"""

from __future__ import annotations

import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pulumi
from google.protobuf import json_format
from pulumi.runtime.mocks import MockMonitor

from spec.stack_file import read_stack_file  # noqa: F401 (tests/e2e reads stack files through here)
from spec.vocabulary import PROJECT

ROOT = Path(__file__).resolve().parent.parent
SECRET_MARK = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict
    urn: str
    parent: str
    dependencies: set = field(default_factory=set)
    protect: bool = False
    provider: str = ""
    ignore_changes: tuple = ()

    @property
    def id(self) -> str:
        """The id the mocks give it (libvirt inputs refer to other resources by id)."""
        return f"{self.name}-id"


def is_secret(value) -> bool:
    return isinstance(value, dict) and value.get(SECRET_MARK) == SECRET_SIG


def reveal(value):
    """The value with every secret in it replaced by what it holds (for use, never for
    printing)."""
    if is_secret(value):
        return reveal(value["value"])
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def stack_config(stack: str, root: Path = ROOT) -> dict:
    """The project's config of stacks/Pulumi.<stack>.yaml."""
    return read_stack_file(root / "stacks" / f"Pulumi.{stack}.yaml")


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self, stack_outputs: Optional[dict] = None):
        self.stack_outputs = stack_outputs or {}

    def new_resource(self, args):
        if args.typ == "pulumi:pulumi:StackReference":
            name = args.inputs["name"]
            return [name, {"name": name, "outputs": self.stack_outputs.get(name, {})}]
        outputs = dict(args.inputs)
        if args.typ.startswith("command:"):
            outputs.setdefault("stdout", "")
        return [f"{args.name}-id", outputs]

    def call(self, args):
        return {}


class _RecordingMonitor(MockMonitor):
    def __init__(self, mocks: _Mocks, registered: dict[str, Registered]):
        super().__init__(mocks)
        self.registered = registered

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = json_format.MessageToDict(request.object)
            self.registered[response.urn] = Registered(
                request.type,
                request.name,
                inputs,
                response.urn,
                request.parent,
                set(request.dependencies),
                request.protect,
                request.provider,
                tuple(request.ignoreChanges),
            )
        return response


class Graph:
    """What one run of the program registered."""

    def __init__(self, registered: dict[str, Registered]):
        self.by_urn = registered

    def resources(self) -> list[Registered]:
        return list(self.by_urn.values())

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.by_urn.values() if r.type == typ]

    def named(self, suffix: str) -> Registered:
        matches = [r for r in self.by_urn.values() if r.name.endswith(suffix)]
        assert len(matches) == 1, f"{suffix}: {[m.name for m in matches]}"
        return matches[0]

    def commands(self) -> list[Registered]:
        return [r for r in self.by_urn.values() if r.type in ("command:remote:Command", "command:local:Command")]

    def depends(self, later: Registered, earlier: Registered) -> bool:
        """Whether later (transitively) waits for earlier."""
        seen, todo = set(), [later.urn]
        while todo:
            for dep in self.by_urn[todo.pop()].dependencies:
                if dep == earlier.urn:
                    return True
                if dep in self.by_urn and dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return False


def record(
    stack: str, preview: bool = True, stack_outputs: Optional[dict] = None, into: Optional[dict] = None
) -> dict[str, Registered]:
    """Points the Pulumi runtime at mocks; what gets registered lands in the returned map
    (INTO, when given: the caller sees it even if the program fails)."""
    registered: dict[str, Registered] = {} if into is None else into
    mocks = _Mocks(stack_outputs)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=_RecordingMonitor(mocks, registered))
    return registered


def engine_config(config: dict, secrets: dict, plain: tuple[str, ...] = ()) -> tuple[dict[str, str], list[str]]:
    """CONFIG and SECRETS as the engine hands them to the program: PROJECT:key -> text
    (structured values as JSON), and the keys it holds as secrets (all of SECRETS but the
    PLAIN ones, which a user set without --secret)."""
    values = {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    values.update({f"{PROJECT}:{k}": v for k, v in secrets.items()})
    return values, [f"{PROJECT}:{k}" for k in secrets if k not in plain]


def capture(
    stack: str,
    config: dict,
    secrets: Optional[dict] = None,
    root: Path = ROOT,
    preview: bool = True,
    stack_outputs: Optional[dict] = None,
    plain: tuple[str, ...] = (),
    registered: Optional[dict] = None,
) -> Graph:
    """Runs the program of ROOT for STACK with CONFIG (the stack file's project keys,
    plain values) and SECRETS (config key -> value, set as secrets but the PLAIN ones),
    as a preview or as an update (which needs the builtin image to exist).
    STACK_OUTPUTS: what stack references see (stack name -> outputs). REGISTERED: a map
    to record into, for a caller that expects the program to fail."""
    registered = record(stack, preview, stack_outputs, registered)
    pulumi.runtime.set_all_config(*engine_config(config, secrets or {}, plain))

    @pulumi.runtime.test
    def program():
        runpy.run_path(str(root / "__main__.py"), run_name="__main__")

    program()
    return Graph(registered)
