"""Stack files (stacks/Pulumi.<stack>.yaml, platform/stacks/...): one reader for the
program's tests, the platform's registry of tenants and the benchmarks. No Pulumi import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from spec.vocabulary import PROJECT


def read_stack_file(path: Path, project: str = PROJECT) -> dict[str, Any]:
    """PROJECT's config in the stack file at PATH, without the project prefix."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    prefix = project + ":"
    return {k[len(prefix):]: v for k, v in (data.get("config") or {}).items() if k.startswith(prefix)}


def stack_files(folder: Path, project: str = PROJECT) -> dict[str, dict[str, Any]]:
    """Every Pulumi.<stack>.yaml in FOLDER, by its path from FOLDER's parent (stacks/...)."""
    folder = Path(folder)
    return {f"{folder.name}/{p.name}": read_stack_file(p, project) for p in sorted(folder.glob("Pulumi.*.yaml"))}
