"""gfs2-cluster policy pack: `pulumi preview --policy-pack policy [--policy-pack-config F]`.

Only wiring: the rules are pure functions in policy/rules.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyConfigSchema, PolicyPack, StackValidationPolicy  # noqa: E402
from pulumi_policy.proxy import UnknownValueError  # noqa: E402
from pulumi_policy.secret import Secret  # noqa: E402

from policy.rules import RULES, SECRET_SIG, UNKNOWN, Resource, pack_config  # noqa: E402


def _item(container, key):
    """An item of the pack's proxies, or UNKNOWN for a value a preview cannot know yet
    (an output such as a command's stdout): reading it raises, and would stop the rule."""
    try:
        return _plain(container[key])
    except UnknownValueError:
        return UNKNOWN


def _plain(value):
    """Secrets as the marked maps the rules expect; everything else as plain data."""
    if isinstance(value, Secret):
        return {"4dabf18193072939515e22adb298388d": SECRET_SIG, "value": _plain(value.value)}
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _item(value, k) for k in value}
    if isinstance(value, (list, tuple)) or hasattr(value, "__getitem__") and hasattr(value, "__len__"):
        if isinstance(value, str):
            return value
        return [_item(value, i) for i in range(len(value))]
    return value


# The platform publishes its registry of tenants; CI passes it as this policy's config.
REGISTRY_SCHEMA = PolicyConfigSchema(
    properties={
        "registry": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "hypervisor": {"type": "string"},
                    "stackId": {"type": "string"},
                    "vlanId": {"type": "integer"},
                    "fencePort": {"type": "integer"},
                },
                "required": ["hypervisor", "stackId", "vlanId", "fencePort"],
            },
        }
    }
)


def policy(name, rule, description):
    def validate(args, report_violation):
        resources = [Resource(r.resource_type, r.name, _plain(r.props)) for r in args.resources]
        for problem in rule(resources, pack_config({name: args.get_config()})):
            report_violation(problem)

    return StackValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=REGISTRY_SCHEMA if name == "tenants-do-not-share-vlans-or-fence-ports" else None,
    )


PolicyPack(
    name="gfs2-cluster",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[policy(name, rule, description) for name, (rule, description) in RULES.items()],
)
