"""The stack's config and secrets, read from the engine and checked before any resource."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi.runtime.config as runtime_config

from spec import SpecError, StackSpec, load_spec
from spec.load import parse_pulumi_config
from spec.rules import Issue
from spec.vocabulary import PROJECT
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Secrets:
    """Secret values as Pulumi secrets; they only ever travel on a command's stdin."""

    ssh_private_key: pulumi.Output
    fence_key_b64: pulumi.Output
    cluster_auth_key_b64: pulumi.Output
    ssh_public_key: str


def _file(path_text: str, key: str) -> bytes:
    path = Path(path_text).expanduser()
    path = path if path.is_absolute() else ROOT / path
    try:
        return path.read_bytes()
    except OSError as e:
        raise SpecError([Issue(key, f"cannot read {path}: {e.strerror}")]) from None


def _secret(config: pulumi.Config, file_text, file_key: str, config_key: str, encode: bool) -> pulumi.Output:
    if file_text is not None:
        data = _file(file_text, file_key)
        return pulumi.Output.secret(base64.b64encode(data).decode() if encode else data.decode())
    value = config.get_secret(config_key)
    return value if value is not None else pulumi.Output.secret("")


def read() -> tuple[StackSpec, Secrets]:
    raw = dict(runtime_config.CONFIG.get())
    encrypted = frozenset(key for key in raw if runtime_config.is_config_secret(key))
    config, secrets_set = parse_pulumi_config(raw, PROJECT, encrypted)
    spec = load_spec(config, secrets_set)
    cfg = pulumi.Config(PROJECT)
    public_key = spec.ssh.public_key or _file(spec.ssh.public_key_file, "ssh.publicKeyFile").decode().strip()
    secrets = Secrets(
        ssh_private_key=_secret(cfg, spec.ssh.private_key_file, "ssh.privateKeyFile", "sshPrivateKey", encode=False),
        fence_key_b64=_secret(cfg, spec.fencing.key_file, "fencing.keyFile", "fenceKey", encode=True),
        cluster_auth_key_b64=_secret(cfg, spec.cluster.auth_key_file, "cluster.authKeyFile", "clusterAuthKey", encode=True),
        ssh_public_key=public_key,
    )
    return spec, secrets
