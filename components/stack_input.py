"""The stack's config and secrets, read from the engine and checked before any resource.

Every check is spec.load.load_stack's: this module only hands it the engine's config and
a way to read the key files, then wraps the key material as Pulumi secrets.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi
import pulumi.runtime.config as runtime_config

from spec import StackSpec
from spec.load import load_stack
from spec.vocabulary import PROJECT, SECRET_KEYS

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Secrets:
    """Secret values as Pulumi secrets; they only ever travel on a command's stdin."""

    ssh_private_key: pulumi.Output
    fence_key_b64: pulumi.Output
    cluster_auth_key_b64: pulumi.Output
    ssh_public_key: str


def _read(path_text: str) -> bytes:
    """A key file the stack names: absolute, ~/..., or relative to the project folder."""
    path = Path(path_text).expanduser()
    return (path if path.is_absolute() else ROOT / path).read_bytes()


def _secret(config: pulumi.Config, data: Optional[bytes], config_key: str, encode: bool) -> pulumi.Output:
    if data is not None:
        return pulumi.Output.secret(base64.b64encode(data).decode() if encode else data.decode())
    value = config.get_secret(config_key)
    return value if value is not None else pulumi.Output.secret("")


def read() -> tuple[StackSpec, Secrets]:
    """The checked stack and its secrets; raises spec.SpecError naming every problem."""
    raw = dict(runtime_config.CONFIG.get())
    encrypted = frozenset(key for key in raw if runtime_config.is_config_secret(key))
    stack = load_stack(raw, PROJECT, encrypted, _read)
    cfg = pulumi.Config(PROJECT)
    files = {key: stack.key_files.get(field) for key, field in SECRET_KEYS.items()}
    secrets = Secrets(
        ssh_private_key=_secret(cfg, files["sshPrivateKey"], "sshPrivateKey", encode=False),
        fence_key_b64=_secret(cfg, files["fenceKey"], "fenceKey", encode=True),
        cluster_auth_key_b64=_secret(cfg, files["clusterAuthKey"], "clusterAuthKey", encode=True),
        ssh_public_key=stack.ssh_public_key,
    )
    return stack.spec, secrets
