"""The platform stack: hypervisor-side pieces shared by every tenant (trunk, image pool,
base image) and the registry that gives each tenant its VLAN id and fence port.

No Pulumi import; errors name the key path like the tenant spec's.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from pydantic import Field, ValidationError

from spec.load import SpecError, _issue
from spec.model import Hypervisor, Label, Model
from spec.names import FENCE_PORT_BASE
from spec.rules import Issue

IMAGES_POOL = "g2-images"
IMAGES_PATH = "/var/lib/libvirt/gfs2-cluster/images"


class RegisteredTenant(Model):
    """One tenant stack allowed on a hypervisor, with its VLAN id and fence port."""

    stack_id: str = Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=21)
    hypervisor: Label
    vlan_id: int = Field(ge=1, le=4094)
    # Default: the tenant stack's own derivation (FENCE_PORT_BASE + vlanId).
    fence_port: Optional[int] = Field(default=None, ge=1024, le=65535)

    @property
    def port(self) -> int:
        return self.fence_port or FENCE_PORT_BASE + self.vlan_id


class PlatformSpec(Model):
    hypervisors: list[Hypervisor] = Field(min_length=1)
    # Path of the image on the machine running Pulumi; "builtin" is image/build.sh's.
    image: str = "builtin"
    tenants: list[RegisteredTenant] = []


# What must be unique among registered tenants: a stack id everywhere, a VLAN id and a
# fence port per hypervisor.
UNIQUE = {
    "stackId": lambda t: ("", t.stack_id),
    "vlanId": lambda t: (t.hypervisor, t.vlan_id),
    "fencePort": lambda t: (t.hypervisor, t.port),
}


def check(spec: PlatformSpec) -> list[Issue]:
    names = {h.name for h in spec.hypervisors}
    issues = [
        Issue(f"tenants[{i}].hypervisor", f"no hypervisor named {t.hypervisor!r}; known: {', '.join(sorted(names))}")
        for i, t in enumerate(spec.tenants)
        if t.hypervisor not in names
    ]
    for path, key in UNIQUE.items():
        owner: dict = {}
        for i, t in enumerate(spec.tenants):
            k = key(t)
            if k in owner:
                where = f" on {k[0]}" if k[0] else ""
                issues.append(Issue(f"tenants[{i}].{path}", f"{k[1]}{where} already belongs to {owner[k]}"))
            else:
                owner[k] = t.stack_id
    return issues


def load_platform(config: Mapping[str, Any]) -> PlatformSpec:
    try:
        spec = PlatformSpec.model_validate(dict(config))
    except ValidationError as e:
        raise SpecError([_issue(err, PlatformSpec) for err in e.errors()]) from None
    issues = check(spec)
    if issues:
        raise SpecError(issues)
    return spec


def registry(spec: PlatformSpec) -> list[dict]:
    """What the platform publishes for the policy pack and the tenant stacks."""
    hosts = {h.name: h.ssh_target.split("@", 1)[1] if h.ssh_target else "localhost" for h in spec.hypervisors}
    return [
        {"hypervisor": hosts[t.hypervisor], "stackId": t.stack_id, "vlanId": t.vlan_id, "fencePort": t.port}
        for t in spec.tenants
    ]
