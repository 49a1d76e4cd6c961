"""Shared test fixtures: golden files, example stacks, and the real validators."""

from __future__ import annotations

import base64
import difflib
import shutil
import subprocess
from pathlib import Path

import pytest

from program_graph import stack_config  # noqa: F401 (the tests' way to read a stack file)
from spec.stack_file import read_stack_file
from spec.vocabulary import PLATFORM_PROJECT, PROJECT  # noqa: F401 (PROJECT: for the tests)

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
STACKS = ROOT / "stacks"


def pytest_addoption(parser):
    parser.addoption(
        "--regen-golden",
        action="store_true",
        help="rewrite tests/golden/ from the current renderers instead of comparing",
    )


@pytest.fixture
def golden(request):
    """golden(name, text): compare text with tests/golden/name (or rewrite it)."""
    regen = request.config.getoption("--regen-golden")

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if regen or not path.exists():
            if not regen:
                pytest.fail(f"no golden file {path}; run pytest --regen-golden and review the diff")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        expected = path.read_text()
        if text != expected:
            diff = "".join(
                difflib.unified_diff(expected.splitlines(True), text.splitlines(True), str(path), "rendered")
            )
            pytest.fail(f"{name} differs from its golden file (pytest --regen-golden rewrites it):\n{diff}")

    return check


def example_stacks() -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in STACKS.glob("Pulumi.*.yaml"))


def require_tool(name: str) -> str:
    """The path of a real validator; a missing one fails the test (make setup installs it)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{name} is not installed: run make setup")
    return path


def topology_of(config: dict):
    """The Topology of a stack's config: stacks that keep their keys in files load as they
    are; the others name their secrets (set in the engine's config, not in the file)."""
    from spec import SpecError, build, load_spec
    from spec.vocabulary import SECRET_KEY_NAMES

    try:
        return build(load_spec(config))
    except SpecError:
        return build(load_spec(config, secrets_set=SECRET_KEY_NAMES))


def shellcheck(text: str, *excluded: str) -> subprocess.CompletedProcess:
    """The real shellcheck on a bash script's text, EXCLUDED codes left out."""
    args = [require_tool("shellcheck"), "-s", "bash"]
    if excluded:
        args += ["-e", ",".join(excluded)]
    return subprocess.run([*args, "-"], input=text, capture_output=True, text=True, check=False)


# Throw-away secrets for running the program under mocks.
SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nTEST-ONLY-SSH-KEY-MATERIAL\n-----END OPENSSH PRIVATE KEY-----\n"
FENCE_KEY = base64.b64encode(b"TEST-ONLY-FENCE-KEY" * 20).decode()
AUTH_KEY = base64.b64encode(b"TEST-ONLY-COROSYNC-AUTHKEY" * 10).decode()
SECRETS = {"sshPrivateKey": SSH_KEY, "fenceKey": FENCE_KEY, "clusterAuthKey": AUTH_KEY}
# What every secret holds, as text, for looking for it where it must not be.
SECRET_TEXTS = (FENCE_KEY, AUTH_KEY, "TEST-ONLY-SSH-KEY-MATERIAL")
# The local stack's key files (relative to the project folder): throw-away ones.
LOCAL_KEY_FILES = {
    ".state/secrets/local-dev/id_ed25519": SSH_KEY.encode(),
    ".state/secrets/local-dev/id_ed25519.pub": b"ssh-ed25519 AAAATEST test\n",
    ".state/secrets/local-dev/fence_xvm.key": base64.b64decode(FENCE_KEY),
    ".state/secrets/local-dev/corosync.key": base64.b64decode(AUTH_KEY),
}


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


@pytest.fixture
def local_key_files(tmp_path, monkeypatch):
    """The local stack reads key files under .state/secrets/: give it throw-away ones."""
    import components.stack_input as stack_input

    write_files(tmp_path, LOCAL_KEY_FILES)
    monkeypatch.setattr(stack_input, "ROOT", tmp_path)


def platform_config() -> dict:
    """The config of the example platform stack (platform/stacks/Pulumi.shared.yaml)."""
    return read_stack_file(ROOT / "platform" / "stacks" / "Pulumi.shared.yaml", PLATFORM_PROJECT)


def platform_outputs() -> dict:
    """What the example platform stack (platform/stacks/Pulumi.shared.yaml) publishes."""
    from spec.platform import IMAGES_POOL, load_platform, registry, tenants

    stack = "organization/gfs2-platform/shared"
    spec = load_platform(platform_config())
    files = {f"stacks/Pulumi.{s}.yaml": stack_config(s) for s in example_stacks()}
    names = [h.name for h in spec.hypervisors]
    return {
        stack: {
            "registry": registry(tenants(spec, stack, files)),
            "pools": {n: IMAGES_POOL for n in names},
            "baseVolumes": {n: "/var/lib/libvirt/gfs2-cluster/images/g2-base.qcow2" for n in names},
        }
    }


def program(stack: str, config: dict | None = None, secrets: dict | None = None):
    """The resources the program registers for a stack, under Pulumi mocks (the local
    stack needs the local_key_files fixture)."""
    from program_graph import capture

    config = stack_config(stack) if config is None else config
    secrets = ({} if stack == "local" else SECRETS) if secrets is None else secrets
    return capture(stack, config, secrets, stack_outputs=platform_outputs())
