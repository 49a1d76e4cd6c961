"""Node scripts: a bash body from render/scripts/ behind a header of quoted values.

Every value reaches the script as a shell variable quoted with shlex.quote, never pasted
into command text; secrets are never values here, they arrive on stdin.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from importlib import resources
from typing import Union

Value = Union[str, int, bool, tuple, list]
HEADER = "#!/bin/bash\nset -euo pipefail\n"


def _body(name: str) -> str:
    return resources.files("render.scripts").joinpath(name).read_text()


def _shell_value(value: Value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return "\n".join(str(v) for v in value)
    return str(value)


def render(body: str, step: str, **values: Value) -> str:
    """The script text: header, quoted values, helpers, then the body file."""
    lines = [HEADER, f"STEP={shlex.quote(step)}\n"]
    for key, value in values.items():
        lines.append(f"{key.upper()}={shlex.quote(_shell_value(value))}\n")
    return "".join(lines) + _body("lib.sh") + "\n" + _body(body)


def values_of(script: str) -> dict[str, str]:
    """The quoted values a rendered script starts with (inverse of render); a command
    wrapped as `bash -c SCRIPT` is unwrapped first."""
    if script.startswith("bash -c "):
        script = shlex.split(script)[2]
    values: dict[str, str] = {}
    for token in shlex.split(script, comments=True)[3:]:  # after: set -euo pipefail
        name, sep, value = token.partition("=")
        if not sep or not name.isidentifier():
            break
        values[name] = value
    return values


@dataclass(frozen=True)
class NodeScript:
    """One step on one node: how to do it and how to undo it, both idempotent."""

    step: str
    create: str
    delete: str

    @property
    def digest(self) -> str:
        """Hash of what was rendered: a change replaces the step on the node."""
        return hashlib.sha256((self.create + "\0" + self.delete).encode()).hexdigest()[:16]


def node_script(step: str, create: str, delete: str, **values: Value) -> NodeScript:
    return NodeScript(step, render(create, step, **values), render(delete, step, **values))
