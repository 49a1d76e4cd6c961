"""tools/stack.sh against a file backend a killed run left broken: it repairs what the
engine itself wrote half, and never makes a new stack over one it cannot open."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.engine

STACK = "scratch-meta"
# prepare runs everything before the engine; an image of its own keeps the image build out.
STACK_FILE = "config:\n  gfs2-cluster:image:\n    source: file\n    path: /nonexistent.qcow2\n"


def prepare(state: Path, stack_file: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_BACKEND_URL", "PULUMI_CONFIG_", "GFS2_"))}
    env.update(GFS2_STATE_DIR=str(state), GFS2_STACK_FILE=str(stack_file))
    return subprocess.run([ROOT / "tools" / "stack.sh", "prepare", STACK], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def stack(tmp_path) -> tuple[Path, Path]:
    """A new stack in a file backend of its own: (state dir, checkpoint file)."""
    state = tmp_path / "state"
    (state / "backend").mkdir(parents=True)  # as make setup leaves them
    (state / "passphrase").write_text("test-only-passphrase\n")
    stack_file = tmp_path / f"Pulumi.{STACK}.yaml"
    stack_file.write_text(STACK_FILE)
    p = prepare(state, stack_file)
    assert p.returncode == 0, p.stdout + p.stderr
    checkpoint = state / "backend" / ".pulumi" / "stacks" / "gfs2-cluster" / f"{STACK}.json"
    assert json.loads(checkpoint.read_text())["checkpoint"]["stack"].endswith(STACK)
    return state, checkpoint


@pytest.mark.parametrize("left", ["", '{"user.content_type": "app', "\x00\x00\x00"],
                         ids=["empty", "cut-short", "zeros"])
def test_a_metadata_file_a_killed_run_left_half_written_is_repaired_and_the_state_kept(tmp_path, stack, left):
    state, checkpoint = stack
    salt_file = state / "stacks" / f"Pulumi.{STACK}.yaml"
    before = checkpoint.read_bytes(), salt_file.read_text()
    attrs = checkpoint.with_name(checkpoint.name + ".attrs")
    attrs.write_text(left)
    p = prepare(state, tmp_path / f"Pulumi.{STACK}.yaml")
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"stack {STACK}: removed {attrs}, an unreadable metadata file a killed run left" in p.stdout
    assert "Created stack" not in p.stdout + p.stderr
    assert (checkpoint.read_bytes(), salt_file.read_text()) == before


def test_a_stack_the_backend_cannot_open_is_refused_not_made_again(tmp_path, stack):
    state, checkpoint = stack
    before = checkpoint.read_bytes()
    # Metadata the engine cannot read and that is no file of its own making to remove.
    attrs = checkpoint.with_name(checkpoint.name + ".attrs")
    attrs.unlink()
    attrs.mkdir()
    p = prepare(state, tmp_path / f"Pulumi.{STACK}.yaml")
    assert p.returncode == 2, p.stdout + p.stderr
    assert f"stack {STACK}: the backend cannot open it, so no new stack is made over it" in p.stderr
    assert "failed to load checkpoint" in p.stderr
    assert checkpoint.read_bytes() == before
