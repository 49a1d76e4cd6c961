"""The platform stack: hypervisor-side pieces shared by every tenant (image pool, base
image), and the registry of its tenants, read from the tenant stack files that name it.

A VLAN id or a fence port belongs to one tenant per hypervisor; the registry refuses a
second one, naming the stack file. No Pulumi import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

from pydantic import Field, ValidationError

from spec.load import SpecError, _issue, load_spec
from spec.model import Hypervisor, ImageSource, Model
from spec.names import POOL_ROOT
from spec.rules import Issue
from spec.topology import build
from spec.vocabulary import SECRET_KEY_NAMES

IMAGES_POOL = "g2-images"
IMAGES_PATH = f"{POOL_ROOT}/images"


class PlatformHypervisor(Hypervisor):
    # The base image of this hypervisor's guests, uploaded once into its image pool: a
    # path on the machine running Pulumi, or "builtin" (image/build.sh's).
    image: ImageSource = "builtin"


class PlatformSpec(Model):
    hypervisors: list[PlatformHypervisor] = Field(min_length=1)


@dataclass(frozen=True)
class RegisteredTenant:
    stack_file: str
    stack_id: str
    hypervisor: str  # the hypervisor's host name, as the policy pack sees it
    vlan_id: int
    fence_port: int


def load_platform(config: Mapping[str, Any]) -> PlatformSpec:
    try:
        return PlatformSpec.model_validate(dict(config))
    except ValidationError as e:
        raise SpecError([_issue(err, PlatformSpec) for err in e.errors()]) from None


def _host(uri: str) -> str:
    return urlsplit(uri).hostname or "localhost"


def tenants(platform: PlatformSpec, platform_stack: str, stack_files: Mapping[str, Mapping[str, Any]]) -> list[RegisteredTenant]:
    """The tenants of PLATFORM_STACK: every stack file (name -> project config) whose
    `platform.stack` names it. Raises SpecError for a tenant on an unknown hypervisor
    or one that takes another's VLAN id or fence port."""
    hosts = {_host(h.uri) for h in platform.hypervisors}
    found, issues = [], []
    for file, config in sorted(stack_files.items()):
        if (config.get("platform") or {}).get("stack") != platform_stack:
            continue
        topo = build(load_spec(config, SECRET_KEY_NAMES))
        host = _host(topo.member_hypervisor.uri)
        if host not in hosts:
            issues.append(Issue(f"{file}: hypervisors", f"{host} is not a hypervisor of {platform_stack}"))
            continue
        found.append(RegisteredTenant(file, topo.names.stack_id, host, topo.spec.network.vlan_id, topo.fencing.port))
    for key, what in (("vlanId", "VLAN"), ("fencing.port", "fence port")):
        owner: dict = {}
        for t in found:
            k = (t.hypervisor, t.vlan_id if key == "vlanId" else t.fence_port)
            if k in owner:
                issues.append(Issue(f"{t.stack_file}: {key}", f"{what} {k[1]} on {k[0]} already belongs to {owner[k]}"))
            else:
                owner[k] = t.stack_id
    if issues:
        raise SpecError(issues)
    return found


def registry(found: list[RegisteredTenant]) -> list[dict]:
    """What the platform publishes for the policy pack."""
    return [
        {"hypervisor": t.hypervisor, "stackId": t.stack_id, "vlanId": t.vlan_id, "fencePort": t.fence_port}
        for t in found
    ]
