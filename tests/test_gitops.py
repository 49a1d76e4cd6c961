"""The GitOps pipeline: it covers every stack, previews on merge requests with the
policy pack, updates on merge, and takes secrets only from the CI secret store. (The
pipeline run for real by gitlab-ci-local: tests/team/test_pipeline.py.)"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, example_stacks, require_tool
from spec.vocabulary import PROJECT, SECRET_KEYS
from tools.gitops import PLATFORM_DIR, TENANT_DIR, changed_files, plan, run, stacks

PIPELINE = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
CI_STACK = (ROOT / "tools" / "ci-stack.sh").read_text()
EVERY_STACK = [(PLATFORM_DIR, "shared")] + [(TENANT_DIR, s) for s in example_stacks()]


def test_discovery_finds_every_stack_file():
    assert stacks(ROOT, TENANT_DIR) == example_stacks()
    assert stacks(ROOT, PLATFORM_DIR) == ["shared"]


def test_a_change_to_shared_code_covers_every_stack_platform_first():
    assert plan(["render/pacemaker.py"]) == EVERY_STACK
    assert plan(None) == EVERY_STACK  # an unknown base (a new branch)


def test_a_new_tenant_file_runs_that_tenant_and_the_platform_registry():
    assert plan(["stacks/Pulumi.globex-prod.yaml", "README.md"]) == [(PLATFORM_DIR, "shared"), (TENANT_DIR, "globex-prod")]


def test_docs_and_tests_touch_no_stack():
    assert plan(["README.md", "tests/spec/test_spec.py"]) == []


def _repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "stacks").mkdir(parents=True)
    (repo / "platform" / "stacks").mkdir(parents=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", str(repo)], check=True)
    for name in ("a", "b"):
        (repo / "stacks" / f"Pulumi.{name}.yaml").write_text("config: {}\n")
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "two stacks"], cwd=repo, check=True)
    return repo, git


def test_a_deleted_stack_file_is_never_destroyed_by_a_merge(tmp_path):
    repo, git = _repo(tmp_path)
    base = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    subprocess.run([*git, "rm", "-q", "stacks/Pulumi.a.yaml"], cwd=repo, check=True)
    (repo / "stacks" / "Pulumi.b.yaml").write_text("config: {x: 1}\n")
    subprocess.run([*git, "commit", "-qam", "a removed, b changed"], cwd=repo, check=True)
    assert changed_files(base, "HEAD", repo) == ["stacks/Pulumi.b.yaml"]
    assert plan(changed_files(base, "HEAD", repo), repo) == [(TENANT_DIR, "b")]
    assert "destroy" not in CI_STACK.split("case $verb in", 1)[1]


def test_a_base_this_clone_cannot_know_touches_every_stack(tmp_path):
    repo, _ = _repo(tmp_path)
    assert changed_files("0" * 40, "HEAD", repo) is None
    assert changed_files("", "HEAD", repo) is None


def test_the_run_summarises_each_stack_fails_on_any_and_updates_no_tenant_after_a_platform_failure(tmp_path, capfd):
    repo, _ = _repo(tmp_path)
    (repo / "platform" / "stacks" / "Pulumi.p.yaml").write_text("config: {}\n")
    (repo / "tools").mkdir()
    fake = repo / "tools" / "ci-stack.sh"  # fails for the stacks named in FAIL
    fake.write_text('#!/bin/sh\necho "ran $1 $2 $3"; case " $(cat "$(dirname "$0")/FAIL") " in *" $3 "*) exit 1;; esac\n')
    fake.chmod(0o755)
    (repo / "tools" / "FAIL").write_text("b")
    assert run("preview", "", "HEAD", repo) == 1
    out = capfd.readouterr().out
    assert re.findall(r"^  preview (\S+)\s+(\S+)\s+[\d.]+ s$", out, re.M) == [
        ("platform/stacks/p", "ok"), ("stacks/a", "ok"), ("stacks/b", "FAILED")]
    assert "gitops: 2 of 3 stack(s) ok; not ok: stacks/b" in out
    (repo / "tools" / "FAIL").write_text("p")
    assert run("up", "", "HEAD", repo) == 1
    out = capfd.readouterr().out
    assert "ran up platform/stacks p" in out and "ran up stacks" not in out
    assert re.findall(r"^  up\s+(\S+)\s+(\S+)\s+[\d.]+ s$", out, re.M) == [
        ("platform/stacks/p", "FAILED"), ("stacks/a", "skipped"), ("stacks/b", "skipped")]


def test_the_pipeline_previews_merge_requests_and_updates_the_default_branch():
    preview, up = PIPELINE["preview"], PIPELINE["up"]
    assert preview["script"][-1] == '.venv/bin/python tools/gitops.py preview "$CI_MERGE_REQUEST_DIFF_BASE_SHA" "$CI_COMMIT_SHA"'
    assert preview["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    assert up["script"][-1] == '.venv/bin/python tools/gitops.py up "$CI_COMMIT_BEFORE_SHA" "$CI_COMMIT_SHA"'
    assert up["rules"] == [{"if": '$CI_PIPELINE_SOURCE != "merge_request_event" && $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH'}]
    assert up["resource_group"]  # one update job at a time
    assert "trigger" not in yaml.safe_dump(PIPELINE)  # no child pipeline (tools/gitops.py says why)
    assert PIPELINE["test"]["script"] == ["make test"]


def _glob(pattern: str) -> re.Pattern:
    """GitLab's rules:changes glob (File.fnmatch, FNM_PATHNAME|FNM_DOTMATCH|FNM_EXTGLOB)."""
    braces = re.fullmatch(r"\{([^}]*)\}(.*)", pattern)
    alternatives = [a + braces.group(2) for a in braces.group(1).split(",")] if braces else [pattern]
    out = []
    for alt in alternatives:
        out.append(re.escape(alt).replace(r"/\*\*/", "/(?:.*/)?").replace(r"\*", "[^/]*"))
    return re.compile("|".join(f"(?:{o})" for o in out))


def test_the_test_job_runs_for_every_change_but_one_to_stack_files_only():
    changes = PIPELINE["test"]["rules"][0]["changes"]
    globs = [_glob(c) for c in changes]
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    stack_files = {f for f in tracked if re.fullmatch(r"(platform/)?stacks/Pulumi\.[^/]+\.yaml", f)}
    assert stack_files
    # Every tracked file outside stacks/ (a new top-level folder must be added to the list).
    for path in itertools.chain(tracked, ["stacks/Pulumi.initech-prod.yaml"]):
        matched = any(g.fullmatch(path) for g in globs)
        if path in stack_files or path == "stacks/Pulumi.initech-prod.yaml":
            assert not matched, f"{path}: a stack file would run make test"
        else:
            assert matched, f"{path}: a change to it would not run make test ({changes})"


def test_every_tenant_run_uses_the_policy_pack_with_the_platform_registry():
    assert 'policy=(--policy-pack "$root/policy" --policy-pack-config "$config")' in CI_STACK
    assert 'preview) pulumi preview --stack "$stack" --non-interactive --diff "${policy[@]}"' in CI_STACK
    # Without --skip-preview: a policy violation stops the update before it changes anything.
    assert 'up) pulumi up --stack "$stack" --non-interactive --yes "${policy[@]}"' in CI_STACK
    assert "pulumi stack output registry --json" in CI_STACK


# The CI secret store's variables of a tenant, as README's "adding a tenant" names them.
CI_SECRETS = {
    "INITECH_PROD_SSH_PRIVATE_KEY": "sshPrivateKey",
    "INITECH_PROD_FENCE_KEY": "fenceKey",
    "INITECH_PROD_CLUSTER_AUTH_KEY": "clusterAuthKey",
}
FAKE_PULUMI = """#!/bin/sh
# Logs each call as ARGS | STDIN; a stack of this test names no platform.
case "$1 $2" in
  "config set") stdin=$(cat) ;;
  "config get") exit 1 ;;
esac
printf '%s | %s\\n' "$*" "$stdin" >>"$PULUMI_LOG"
"""


def test_secrets_come_from_ci_variables_on_stdin(tmp_path):
    assert set(CI_SECRETS.values()) == set(SECRET_KEYS)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in (("pulumi", FAKE_PULUMI), ("make", "#!/bin/sh\n")):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    given = {variable: f"TEST-ONLY-{variable}" for variable in CI_SECRETS if variable != "INITECH_PROD_FENCE_KEY"}
    env = {
        # The venv's python3 first, as tools/env.sh puts it.
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "GFS2_CACHE_DIR": str(tmp_path / "cache"),
        "PULUMI_BACKEND_URL": f"file://{tmp_path}/backend",
        "PULUMI_CONFIG_PASSPHRASE": "test",
        "PULUMI_LOG": str(tmp_path / "pulumi.log"),
        **given,
    }
    subprocess.run([ROOT / "tools" / "ci-stack.sh", "preview", "stacks", "initech-prod"], env=env, check=True)
    calls = (tmp_path / "pulumi.log").read_text().splitlines()
    assert [c for c in calls if c.startswith("config set")] == [
        f"config set --secret {PROJECT}:{CI_SECRETS[variable]} --stack initech-prod | {value}"
        for variable, value in given.items()
    ]
    assert calls[-1].startswith("preview --stack initech-prod")
    assert not re.search(r"PRIVATE KEY", (ROOT / ".gitlab-ci.yml").read_text() + CI_STACK)
    assert "variables" not in PIPELINE  # nothing secret (nor anything else) in the file
    assert ': "${PULUMI_CONFIG_PASSPHRASE:?set PULUMI_CONFIG_PASSPHRASE in the CI secret store}"' in CI_STACK
    assert 'python3 "$root/tools/backend.py" check' in CI_STACK


@pytest.mark.parametrize("script", ["ci-stack.sh", "ci-bootstrap.sh"])
def test_the_job_scripts_pass_shellcheck(script):
    subprocess.run([require_tool("shellcheck"), "-x", str(ROOT / "tools" / script)], check=True, cwd=ROOT)
