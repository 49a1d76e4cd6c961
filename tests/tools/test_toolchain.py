"""tools/toolchain.sh from an empty project cache (the Go caches stay warm): what it
builds, and the source archive it refuses to build from."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.engine

UPSTREAM = Path(os.environ.get("GFS2_UPSTREAM_DIR") or ROOT.parent / "shared" / "upstream")


def toolchain(cache: Path, upstream: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "GFS2_"))}
    env.update(GFS2_CACHE_DIR=str(cache), GFS2_UPSTREAM_DIR=str(upstream))
    return subprocess.run([ROOT / "tools" / "toolchain.sh"], env=env, capture_output=True, text=True, timeout=1800)


@pytest.fixture
def upstream_copy(tmp_path):
    if not list(UPSTREAM.glob("*.tar.gz")):
        pytest.fail(f"no source archives in {UPSTREAM}: set GFS2_UPSTREAM_DIR")
    copy = tmp_path / "upstream"
    shutil.copytree(UPSTREAM, copy)
    return copy


def test_builds_every_piece_into_an_empty_cache_and_reports_the_versions(tmp_path, upstream_copy):
    p = toolchain(tmp_path / "cache", upstream_copy)
    assert p.returncode == 0, p.stdout + p.stderr
    print(p.stdout)
    assert "toolchain: pulumi v3.259.0; plugins: command 1.2.1, libvirt 0.5.4" in p.stdout
    for plugin in ("command-v1.2.1/pulumi-resource-command", "libvirt-v0.5.4/pulumi-resource-libvirt"):
        assert (tmp_path / "cache" / "plugins" / plugin).is_file()
    again = toolchain(tmp_path / "cache", upstream_copy)
    assert again.returncode == 0 and "built" not in again.stdout, again.stdout


def test_an_archive_whose_sha256_differs_is_not_built(tmp_path, upstream_copy):
    archive = upstream_copy / "pulumi-command-1.2.1.tar.gz"
    archive.write_bytes(archive.read_bytes() + b"x")
    p = toolchain(tmp_path / "cache", upstream_copy)
    assert p.returncode != 0
    assert f"{archive} has sha256" in p.stderr and "not building from it" in p.stderr
    assert "cannot provide the command provider plugin v1.2.1" in p.stderr
    assert not (tmp_path / "cache" / "plugins" / "command-v1.2.1" / "pulumi-resource-command").exists()
