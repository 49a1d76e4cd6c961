"""The policy pack in the real engine: `pulumi preview --policy-pack <copy>/policy
--policy-pack-config FILE`, as tools/ci-stack.sh runs it, on every example stack and on a
copy of the program patched to break each rule.

A pack whose policy cannot run in a preview does not fail the preview: the engine turns
it into an advisory "can't run policy ... during preview" line and exits 0. So the
passing stacks are also previewed with the streaming JSON events, whose
policyAnalyzeStackSummaryEvent names every policy that ran and passed."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from conftest import example_stacks
from policy.rules import RULES

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "engine"))
from cli_project import PACK, UNKNOWN_SENTINELS, Preview, Project, preview_timings  # noqa: E402,F401 (fixture)

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("preview_timings")]

# The local lab names no platform, so no platform's registry lists it (tools/ci-stack.sh
# gives it `{}`); this machine's registry holds it, as in test_policy.py.
LOCAL_LAB = {"hypervisor": "localhost", "stackId": "local-dev", "vlanId": 10, "fencePort": 20010}
COMMANDS = ("command:remote:Command", "command:local:Command")


@pytest.fixture(scope="module")
def published_registry(tmp_path_factory) -> list[dict]:
    """What CI gives the pack: the platform's `registry` output (ci-stack.sh reads it with
    `pulumi stack output registry`). Here, the registry the platform's real preview
    publishes, with its hypervisors and its tenants' stack files pointed at this machine
    as the tenant stacks themselves are, plus the local lab."""
    project = Project(tmp_path_factory.mktemp("platform"), "shared", subproject="platform", tenants=True)
    for i in (0, 1):
        project.set(f"hypervisors[{i}].uri", "qemu:///system", project="gfs2-platform")
    preview = project.preview(events=True)
    assert preview.returncode == 0, preview.output
    registry = preview.stack_outputs()["registry"]
    print(f"registry published by the platform: {registry}")
    assert {t["stackId"] for t in registry} == {"acme-prod", "globex-prod"}
    return [*registry, LOCAL_LAB]


def with_pack(project: Project, registry: list[dict]) -> tuple[str, ...]:
    return ("--policy-pack", str(project.top / "policy"), "--policy-pack-config", str(project.pack_config(registry)))


def pack_line(preview: Preview) -> str:
    """The line for this pack in the table `Policy Packs run:` (the engine shortens the
    path of the copy it loaded it from)."""
    found = [(name, version) for name, version in preview.packs_run() if name.startswith(f"{PACK}|local|")]
    assert len(found) == 1, f"the preview does not name the pack {PACK}: {preview.packs_run()}"
    assert found[0][0].endswith("/project/policy"), found
    return f"{found[0][0]} {found[0][1]}"


def assert_every_policy_ran(preview: Preview) -> None:
    assert "can't run policy" not in preview.output
    assert not [line for line in preview.output.splitlines() if "Traceback" in line or "policy" in line.lower() and "error" in line.lower()]


@pytest.mark.parametrize("stack", example_stacks())
def test_every_stack_passes_every_rule_in_a_real_preview(stack, tmp_path, published_registry):
    project = Project(tmp_path, stack).prepared()
    pack = with_pack(project, published_registry)

    preview = project.preview(*pack)
    assert preview.returncode == 0, preview.output
    print(pack_line(preview))
    assert_every_policy_ran(preview)
    assert preview.violations() == [], "the pack reports policies, though the preview passed"

    # Proof that each rule ran: the engine's own summary of the pack's stack policies.
    events = project.preview(*pack, events=True)
    assert events.returncode == 0
    summaries = [s for s in events.of("policyAnalyzeStackSummaryEvent") if s["policyPackName"] == PACK]
    assert len(summaries) == 1, events.of("policyAnalyzeStackSummaryEvent")
    print(f"policyAnalyzeStackSummaryEvent: {summaries[0]}")
    assert sorted(summaries[0].get("passed", [])) == sorted(RULES)
    assert not summaries[0].get("failed")
    assert events.of("policyEvent") == []
    assert [d for d in events.of("diagnosticEvent") if d.get("severity") == "error"] == []
    # The rules read node scripts from the commands' create text: in a preview every one
    # is known (only their stdout/stderr and libvirt ids are not), so none was skipped.
    commands = [e["metadata"]["new"] for e in events.of("resourcePreEvent") if e["metadata"]["type"] in COMMANDS]
    assert commands
    unknown = [c["urn"] for c in commands if not isinstance(c["inputs"].get("create"), str) or c["inputs"]["create"] in UNKNOWN_SENTINELS]
    assert unknown == []


# --- each rule broken by a small patch of the copied program (or its config) ---------


def drop_last_stonith(project: Project, registry: list[dict]) -> list[dict]:
    project.patch(
        "render/generations/current.py",
        "        if not pacemaker.fencing_enabled(topo):\n            return None\n        # Only the first",
        "        if not pacemaker.fencing_enabled(topo) or member is topo.members[-1]:\n            return None\n"
        "        # Only the first",
    )
    return registry


def drop_a_cman_fence_device(project: Project, registry: list[dict]) -> list[dict]:
    project.patch(
        "render/cman.py",
        "        device = fencing.node_device(node)\n",
        "        device = fencing.node_device(node) if node is not nodes[-1] else None\n",
    )
    return registry


def journals_off_by_two(project: Project, registry: list[dict]) -> list[dict]:
    project.patch("spec/topology.py", "return fs.journals or members + 1", "return fs.journals or members - 1")
    return registry


def qcow2_data_volume(project: Project, registry: list[dict]) -> list[dict]:
    project.patch("components/guest.py", 'format="raw",', 'format="qcow2",')
    return registry


def cached_data_disk(project: Project, registry: list[dict]) -> list[dict]:
    project.patch(
        "render/domain.py",
        'OUT.driver(name="qemu", type="raw", cache="none", io="native")',
        'OUT.driver(name="qemu", type="raw", cache="writeback")',
    )
    return registry


def stdin_pasted_into_create(project: Project, registry: list[dict]) -> list[dict]:
    project.patch(
        "components/access.py",
        "        create=as_command(script.create),\n        delete=as_command(script.delete),\n        stdin=stdin,\n",
        "        create=pulumi.Output.concat(as_command(script.create), ' # ', stdin) if stdin is not None else as_command(script.create),\n"
        "        delete=as_command(script.delete),\n        stdin=stdin,\n",
    )
    return registry


REMOTE_URI = "qemu+unix://kvm2.example.net/system"


def remote_hypervisor_without_vlan(project: Project, registry: list[dict]) -> list[dict]:
    """The local lab's isolated network wired to a shared hypervisor's provider: a program
    bug the spec cannot see (it refuses such a URI in a stack). A qemu+ssh:// URI would make
    the provider dial kvm2 in the preview (and fail on known_hosts); the unix transport
    names the same host, which the rule reads, while the provider talks to this machine's
    libvirtd socket."""
    project.patch(
        "components/tenant_cluster.py",
        'libvirt.Provider(f"{name}-{hv.name}", uri=hv.uri, opts=child)',
        f'libvirt.Provider(f"{{name}}-{{hv.name}}", uri="{REMOTE_URI}", opts=child)',
    )
    # The host-side steps still run here, so the registry's entry for localhost stands.
    return registry


def vlan_given_to_another_tenant(project: Project, registry: list[dict]) -> list[dict]:
    return [*registry, {"hypervisor": "localhost", "stackId": "initech-prod", "vlanId": 230, "fencePort": 20999}]


VARIANTS = {
    "stonith-dropped-for-one-member": ("local", drop_last_stonith, "every-member-is-fenced", ["member m3 has no stonith device"]),
    "cman-node-without-fence-device": ("acme-prod", drop_a_cman_fence_device, "every-member-is-fenced", ["cluster node gnbd1 has no fence device in cluster.conf"]),
    "fewer-journals-than-members": ("local", journals_off_by_two, "journals-cover-members", ["local-dev:shared: 2 journals for 3 members"]),
    "qcow2-data-volume": ("local", qcow2_data_volume, "shared-disks-raw-uncached", ["g2-local-dev-s1-data.raw: a shared disk must be raw, not qcow2"]),
    "cached-data-disk": ("globex-prod", cached_data_disk, "shared-disks-raw-uncached", [
        "g2-globex-prod-iscsi1: its data disks are not given cache='none'",
        "g2-globex-prod-iscsi2: its data disks are not given cache='none'",
    ]),
    # The pack sees secrets as plain text (the engine unmarks them for stack policies), so a
    # create text made from the secret stdin is caught by its content, not its marking.
    "stdin-secret-in-create": ("globex-prod", stdin_pasted_into_create, "no-secret-in-command-text", [
        "globex-prod-fencing-key-m1: its create text repeats what it sends on stdin",
        "globex-prod-membership-m1-roster: its create text repeats what it sends on stdin",
    ]),
    "remote-hypervisor-without-vlan": ("local", remote_hypervisor_without_vlan, "remote-stacks-name-a-vlan", [
        "g2-local-dev: an isolated network on a shared hypervisor",
        "the stack runs on a remote hypervisor but names no VLAN",
    ]),
    "vlan-of-another-tenant": ("globex-prod", vlan_given_to_another_tenant, "tenants-do-not-share-vlans-or-fence-ports", ["VLAN 230 on localhost also belongs to initech-prod"]),
}


def test_every_rule_has_a_breaking_variant():
    assert {rule for _, _, rule, _ in VARIANTS.values()} == set(RULES)


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_broken_program_is_refused_by_a_real_preview(variant, tmp_path, published_registry):
    stack, breaks, rule, messages = VARIANTS[variant]
    project = Project(tmp_path, stack).prepared()
    registry = breaks(project, list(published_registry))
    preview = project.preview(*with_pack(project, registry))

    assert preview.returncode != 0, preview.output
    assert "error: preview failed" in preview.output
    print(pack_line(preview))
    # The program ran through (the spec did not stop it): the pack refused it.
    assert "invalid stack config" not in preview.output and "failed to connect" not in preview.output
    assert preview.count("libvirt:index/domain:Domain") > 0
    assert "can't run policy" not in preview.output
    # The one mandatory policy this variant breaks, and only that one, with its messages.
    found = preview.violations()
    assert {(level, policy) for level, policy, _ in found} == {("mandatory", rule)}, found
    for message in messages:
        assert ("mandatory", rule, message) in found, message
    description = RULES[rule][1]
    assert re.search(rf"\[mandatory\]\s+{re.escape(rule)}\s+\([^)\n]*\){re.escape(description)}\n", preview.stdout)
    if variant == "remote-hypervisor-without-vlan":
        assert f'uri       : "{REMOTE_URI}"' in preview.stdout
        assert preview.count("libvirt:index/domain:Domain") == 4
