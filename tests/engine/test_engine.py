"""The real Pulumi engine (CLI, Python language host, provider plugins) on every example
stack and on the platform, each in a throw-away copy of the project with its own file
backend. Every preview is printed whole, with its duration (run with -s)."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, example_stacks, stack_config
from cli_project import Project, preview_timings  # noqa: F401 (fixture)

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("preview_timings")]

# The toolchain this project is built and tested with (tools/versions.env, requirements.txt).
TOOLCHAIN = {"pulumi": "3.259.0", "command": "1.2.1", "libvirt": "0.5.4"}
DOMAIN, VOLUME, REMOTE = "libvirt:index/domain:Domain", "libvirt:index/volume:Volume", "command:remote:Command"


def versions_env() -> dict[str, str]:
    lines = (ROOT / "tools" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z_]+=", line))


def test_toolchain_reports_its_versions():
    version = subprocess.run(["pulumi", "version"], capture_output=True, text=True, check=True).stdout.strip()
    print(f"pulumi CLI {version} at {shutil.which('pulumi')}")
    host = subprocess.run(["pulumi-language-python", "--version"], capture_output=True, text=True, timeout=30)
    print(f"python language host {host.stdout.strip()} at {shutil.which('pulumi-language-python')}")
    print(subprocess.run(["pulumi", "plugin", "ls"], capture_output=True, text=True, check=True).stdout)
    plugins = json.loads(subprocess.run(["pulumi", "plugin", "ls", "--json"], capture_output=True, text=True, check=True).stdout)
    sdks = {name: importlib.metadata.version(name) for name in ("pulumi", "pulumi-command", "pulumi-libvirt", "pulumi-policy")}
    print(f"Python SDKs in the venv: {sdks}")

    assert version == "v" + TOOLCHAIN["pulumi"]
    assert host.stdout.strip() == "v" + TOOLCHAIN["pulumi"]
    installed = {(p["kind"], p["name"], p["version"]) for p in plugins}
    for name in ("command", "libvirt"):
        assert ("resource", name, TOOLCHAIN[name]) in installed, f"{name} {TOOLCHAIN[name]} not in {sorted(installed)}"
    assert sdks["pulumi"] == TOOLCHAIN["pulumi"]
    assert sdks["pulumi-command"] == TOOLCHAIN["command"] and sdks["pulumi-libvirt"] == TOOLCHAIN["libvirt"]
    pinned = versions_env()
    assert (pinned["PULUMI_VERSION"], pinned["COMMAND_VERSION"], pinned["LIBVIRT_VERSION"]) == tuple(TOOLCHAIN.values())


@pytest.mark.parametrize("stack", example_stacks())
def test_preview_plans_the_cluster(stack, tmp_path):
    """Config, secrets, spec rules, every component and both providers in the real
    engine: the preview plans every guest's domain and volumes and the node scripts."""
    preview = Project(tmp_path, stack).prepared().preview()
    assert preview.returncode == 0, preview.output
    assert "Traceback" not in preview.output and "error:" not in preview.output
    planned = preview.planned()
    assert len(planned) == preview.summary_creates(), "the preview lists a different number of creates than it sums"
    config = stack_config(stack)
    members = config["members"].get("count") or len(config["members"]["names"])
    expected = members + len(config["storage"]["servers"])
    assert preview.count(DOMAIN) == expected, planned
    # Each guest has its root volume, each export its data volume, plus the base image.
    assert preview.count(VOLUME) == expected + len(config["storage"]["exports"]) + 1, planned
    assert preview.count(REMOTE) >= 5 * members, planned
    print(f"{stack}: {len(planned)} resources planned: {preview.count(DOMAIN)} domains, "
          f"{preview.count(VOLUME)} volumes, {preview.count(REMOTE)} remote commands")


def test_platform_preview_plans_the_shared_pieces_and_publishes_the_registry(tmp_path):
    project = Project(tmp_path, "shared", subproject="platform", tenants=True)
    for i in (0, 1):
        project.set(f"hypervisors[{i}].uri", "qemu:///system", project="gfs2-platform")
    preview = project.preview()
    assert preview.returncode == 0, preview.output
    assert "Traceback" not in preview.output and "error:" not in preview.output
    assert preview.count("libvirt:index/pool:Pool") == 2 and preview.count(VOLUME) == 2, preview.planned()
    # Its tenants are the stack files that name it: both example tenants, on this machine.
    for stack, vlan in (("acme-prod", 120), ("globex-prod", 230)):
        assert re.search(rf'hypervisor: "localhost"\n\s+stackId\s*: "{stack}"\n\s+vlanId\s*: {vlan}\n', preview.stdout), stack


def test_bad_config_stops_before_any_resource(tmp_path):
    project = Project(tmp_path, "local")
    project.set("storage.exports[0].protocol", "gnbd")
    preview = project.preview()
    assert preview.returncode != 0
    assert "storage.exports[0].protocol: gnbd needs generation legacy" in preview.output
    assert "libvirt:index" not in preview.output and "command:" not in preview.output
    assert "Traceback" not in preview.output


def test_several_mistakes_are_shown_at_once_and_no_resource_is_registered(tmp_path):
    """A real preview of a stack with three mistakes between fields, one naming a secret."""
    project = Project(tmp_path, "local")
    project.set("storage.volumeGroups[0].logicalVolumes[0].filesystem.mountOptions[0]", "lockproto=lock_nolock")
    project.set("fencing.method", "fence_virsh")
    project.set("storage.exports[0].port", "22")
    preview = project.preview()
    print(preview.output)
    assert preview.returncode != 0
    for key in ("storage.volumeGroups[0].logicalVolumes[0].filesystem.mountOptions", "fencing.method",
                "storage.exports[0].port"):
        assert re.search(rf"^\s+{re.escape(key)}\S*: ", preview.output, re.M), key
    assert "Traceback" not in preview.output
    # Only the stack itself is planned: nothing of libvirt, no command, no component.
    assert "Resources:\n    + 1 to create" in preview.output
    assert "libvirt:" not in preview.output and "command:" not in preview.output


def test_a_password_in_a_uri_is_refused_without_printing_it(tmp_path):
    project = Project(tmp_path, "local")
    password = "hunter2-not-printed"
    project.set("hypervisors[0].uri", f"qemu+ssh://root:{password}@kvm9.example.net/system")
    project.set("storage.volumeGroups[0].logicalVolumes[0].filesystem.mountPoint", "/usr")
    preview = project.preview()
    assert preview.returncode != 0
    assert "hypervisors[0].uri: holds a password (not shown)" in preview.output
    assert "storage.volumeGroups[0].logicalVolumes[0].filesystem.mountPoint: is in /usr" in preview.output
    assert password not in preview.output and "Traceback" not in preview.output


def test_missing_required_key_is_named_by_the_engine(tmp_path):
    project = Project(tmp_path, "local")
    project.pulumi("config", "rm", "gfs2-cluster:members")
    preview = project.preview()
    assert preview.returncode != 0
    assert "missing configuration value 'members'" in preview.output
    assert "Traceback" not in preview.output
