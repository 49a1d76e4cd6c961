"""The GitOps pipeline: it covers every stack, previews on merge requests with the
policy pack, updates on merge, and takes secrets only from the CI secret store."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from conftest import ROOT, example_stacks, require_tool
from spec.vocabulary import SECRET_KEYS
from tools.gitops import PLATFORM_DIR, TENANT_DIR, child_pipeline, stacks

PIPELINE = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
CI_STACK = (ROOT / "tools" / "ci-stack.sh").read_text()


def jobs(pipeline):
    return {k: v for k, v in pipeline.items() if k != "stages"}


def test_discovery_finds_every_stack_file():
    assert stacks(ROOT, TENANT_DIR) == example_stacks()
    assert stacks(ROOT, PLATFORM_DIR) == ["shared"]


@pytest.mark.parametrize("verb", ["preview", "up"])
def test_a_change_to_shared_code_covers_every_stack(verb):
    pipeline = child_pipeline(verb, ["render/pacemaker.py"])
    expected = {f"{verb}:stacks:{s}" for s in example_stacks()} | {f"{verb}:platform:shared"}
    assert set(jobs(pipeline)) == expected
    for name, job in jobs(pipeline).items():
        folder = PLATFORM_DIR if ":platform:" in name else TENANT_DIR
        assert job["script"] == [f"tools/ci-stack.sh {verb} {folder} {name.rsplit(':', 1)[1]}"]
        assert job["stage"] == ("platform" if folder == PLATFORM_DIR else "tenants")
        assert job["resource_group"]
        assert ("environment" in job) == (verb == "up")


def test_a_new_tenant_file_previews_that_tenant_and_the_platform_registry():
    pipeline = child_pipeline("preview", ["stacks/Pulumi.globex-prod.yaml", "README.md"])
    assert list(jobs(pipeline)) == ["preview:platform:shared", "preview:stacks:globex-prod"]


def test_docs_and_tests_touch_no_stack():
    pipeline = child_pipeline("up", ["README.md", "tests/spec/test_spec.py"])
    assert list(jobs(pipeline)) == ["nothing-to-do"]


def test_a_deleted_stack_file_is_never_destroyed_by_a_merge(tmp_path):
    # The discover job lists changed files with --diff-filter=d: deletions are not there.
    assert "--diff-filter=d" in PIPELINE["discover"]["script"][1]
    assert "destroy" not in CI_STACK.split("case $verb in", 1)[1]


def test_the_pipeline_previews_merge_requests_and_updates_the_default_branch():
    discover = PIPELINE["discover"]["script"][1]
    assert re.search(r'merge_request_event.*\n\s*verb=preview', discover)
    assert "verb=up" in discover
    trigger = PIPELINE["stacks"]["trigger"]
    assert trigger["include"] == [{"artifact": "stacks.gitlab-ci.yml", "job": "discover"}]
    assert trigger["strategy"] == "depend"
    assert PIPELINE["test"]["script"] == ["make test"]


def test_every_tenant_run_uses_the_policy_pack_with_the_platform_registry():
    assert 'policy=(--policy-pack "$root/policy" --policy-pack-config "$config")' in CI_STACK
    assert 'preview) pulumi preview --stack "$stack" --non-interactive --diff "${policy[@]}"' in CI_STACK
    assert 'up) pulumi up --stack "$stack" --non-interactive --yes "${policy[@]}"' in CI_STACK
    assert "pulumi stack output registry --json" in CI_STACK


def test_secrets_come_from_ci_variables_on_stdin():
    for key in SECRET_KEYS:
        assert f"{key}:" in CI_STACK
    assert "printf '%s' \"${!variable}\" | pulumi config set --secret" in CI_STACK
    assert not re.search(r"PRIVATE KEY", (ROOT / ".gitlab-ci.yml").read_text() + CI_STACK)
    assert set(PIPELINE["variables"]) == {"GFS2_CACHE_DIR"}  # nothing secret in the file
    assert ': "${PULUMI_CONFIG_PASSPHRASE:?set PULUMI_CONFIG_PASSPHRASE in the CI secret store}"' in CI_STACK


def test_the_job_script_passes_shellcheck():
    subprocess.run([require_tool("shellcheck"), "-x", str(ROOT / "tools" / "ci-stack.sh")], check=True, cwd=ROOT)
