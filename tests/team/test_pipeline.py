"""The GitOps pipeline (.gitlab-ci.yml) run by a real GitLab CI client, gitlab-ci-local
(shell executor, installed by make setup), against a real PostgreSQL state backend.

Each pipeline runs in a fresh clone of a throw-away Git repository, as a runner's would:
the project's own files (pipeline, tools/, policy pack, Makefile) with the stand-in program
(tests/team/program) in place of the cluster program, so that the merge's `pulumi up`
writes files in a temporary folder instead of making guests on this machine. The CI
secret store is gitlab-ci-local's variables file in its own home folder: the backend URL,
the database password, the passphrase and one tenant's SSH key come only from there.
The clone gets the project's venv linked in (on a runner, make setup builds one).

Run with -s to see each pipeline's output whole."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from team import PASSPHRASE, PROGRAM, pg, sql  # noqa: F401 (fixture)

pytestmark = pytest.mark.engine

GIT = ["git", "-c", "user.name=CI test", "-c", "user.email=ci@example.invalid", "-c", "init.defaultBranch=main"]
# Runs of the pipeline in this module: (scenario, exit status, seconds, last lines).
RUNS: list[tuple[str, int, float, list[str]]] = []


def git(cwd: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def tenant(out: Path, motd: str, **extra) -> str:
    config = {"gfs2-cluster:outDir": str(out), "gfs2-cluster:files": {"motd": motd}}
    config.update({f"gfs2-cluster:{k}": v for k, v in extra.items()})
    return yaml.safe_dump({"config": config}, sort_keys=False)


class Forge:
    """The Git server (a bare repository), a developer's clone, and runners' clones."""

    def __init__(self, base: Path, server):
        self.base = base
        self.out = base / "out"
        self.origin = base / "origin.git"
        self.home = base / "ci-home"
        self.runs = 0
        self.server = server
        git(base, "init", "-q", "--bare", str(self.origin))
        self.dev = base / "dev"
        self.dev.mkdir()
        # The work tree as it is: tracked files and new ones not ignored.
        files = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
        for name in filter(None, files):
            if (ROOT / name).is_file():
                (self.dev / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, self.dev / name)
        for name in ("Pulumi.yaml", "__main__.py"):
            shutil.copy(PROGRAM / name, self.dev / name)
        for stack_file in [*(self.dev / "stacks").glob("*.yaml"), *(self.dev / "platform" / "stacks").glob("*.yaml")]:
            stack_file.unlink()
        for name in ("initech-test", "hooli-test"):
            (self.dev / "stacks" / f"Pulumi.{name}.yaml").write_text(tenant(self.out / name, f"welcome to {name}"))
        git(self.dev, "init", "-q")
        git(self.dev, "add", "-A")
        git(self.dev, "commit", "-q", "-m", "gfs2-cluster with the stand-in program, two tenants")
        git(self.dev, "remote", "add", "origin", str(self.origin))
        git(self.dev, "push", "-q", "origin", "main")
        # The CI secret store: gitlab-ci-local's variables file.
        key = base / "initech_deploy_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "initech-ci", "-f", str(key)], check=True)
        self.deploy_key = key.read_text()
        (self.home / ".gitlab-ci-local").mkdir(parents=True)
        (self.home / ".gitlab-ci-local" / "variables.yml").write_text(yaml.safe_dump({"global": {
            **server.env(), "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE, "INITECH_TEST_SSH_PRIVATE_KEY": self.deploy_key}}))

    def change(self, branch: str, message: str, edit) -> str:
        """A developer's branch from main with EDIT(dev folder) committed, pushed."""
        git(self.dev, "checkout", "-q", "main")
        git(self.dev, "checkout", "-q", "-b", branch)
        edit(self.dev)
        git(self.dev, "add", "-A")
        git(self.dev, "commit", "-q", "-m", message)
        git(self.dev, "push", "-q", "origin", branch)
        return git(self.dev, "rev-parse", "HEAD")

    def merge(self, branch: str) -> tuple[str, str]:
        """The merge of BRANCH into main, as GitLab makes it: (main before, main after)."""
        git(self.dev, "checkout", "-q", "main")
        before = git(self.dev, "rev-parse", "HEAD")
        git(self.dev, "merge", "-q", "--no-ff", "-m", f"Merge branch '{branch}'", branch)
        git(self.dev, "push", "-q", "origin", "main")
        return before, git(self.dev, "rev-parse", "HEAD")

    def pipeline(self, scenario: str, ref: str, variables: dict[str, str], unset: tuple[str, ...] = ()) -> tuple[int, str]:
        """gitlab-ci-local in a fresh clone at REF, the jobs GitLab would create for it.
        Its environment has nothing of this test's: the secrets come from the store."""
        self.runs += 1
        clone = self.base / f"runner-{self.runs}"
        git(self.base, "clone", "-q", str(self.origin), str(clone))
        git(clone, "checkout", "-q", ref)
        (clone / ".venv").symlink_to(ROOT / ".venv")
        client = os.environ.get("GFS2_GITLAB_CI_LOCAL", "")
        if not os.access(client, os.X_OK):
            pytest.fail(f"gitlab-ci-local is not installed at {client!r}: run make setup")
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": os.environ["HOME"],
               "LANG": "C.UTF-8"}
        args = [client, "--home", str(self.home), "--no-color", "--max-job-name-padding", "0"]
        for name, value in variables.items():
            args += ["--variable", f"{name}={value}"]
        for name in unset:
            args += ["--unset-variable", name]
        # The jobs of this pipeline first: never `test` (make test) from inside the tests.
        listed = subprocess.run([*args, "--list-json"], cwd=clone, env=env, capture_output=True, text=True, timeout=120)
        jobs = {j["name"] for j in json.loads(listed.stdout) if j.get("when") != "never"}
        expected = {"preview"} if variables.get("CI_PIPELINE_SOURCE") == "merge_request_event" else {"up"}
        assert jobs == expected, f"{scenario}: the pipeline would run {sorted(jobs)}\n{listed.stderr}"
        start = time.monotonic()
        result = subprocess.run(args, cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, timeout=900)
        seconds = time.monotonic() - start
        output = result.stdout
        print(f"\n===== pipeline: {scenario} (gitlab-ci-local in {clone.name} at {ref[:12]}) =====\n{output}"
              f"===== exit {result.returncode}, {seconds:.1f} s =====")
        RUNS.append((scenario, result.returncode, seconds, [l for l in output.splitlines() if l.strip()][-12:]))
        assert not re.search(r"^test\s+(starting|\$)", output, re.M), "the test job ran"
        return result.returncode, output

    def mr(self, scenario: str, branch_head: str) -> tuple[int, str]:
        base = git(self.dev, "merge-base", "main", branch_head)
        return self.pipeline(scenario, branch_head, {
            "CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_DIFF_BASE_SHA": base,
            "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"}, unset=("CI_COMMIT_BRANCH",))

    def push_to_main(self, scenario: str, before: str, after: str) -> tuple[int, str]:
        # A runner checks out the commit itself; GitLab names its branch.
        return self.pipeline(scenario, after, {"CI_COMMIT_BEFORE_SHA": before, "CI_COMMIT_BRANCH": "main",
                                               "CI_COMMIT_REF_NAME": "main"})

    def state_rows(self, stack: str, kind: str) -> list[str]:
        prefix = f"pulumi/.pulumi/{kind}/gfs2-cluster/{stack}"
        return [r[0] for r in sql(self.server, "SELECT key FROM pulumi_state WHERE starts_with(key, :'p') ORDER BY key;",
                                  p=prefix)]


@pytest.fixture(scope="module")
def forge(pg, tmp_path_factory):
    yield Forge(tmp_path_factory.mktemp("forge"), pg)
    print("\n===== pipeline runs: what each printed at its end =====")
    for scenario, rc, seconds, tail in RUNS:
        print(f"--- {scenario}: exit {rc}, {seconds:.1f} s")
        print("\n".join(tail))


def summary(output: str) -> list[tuple[str, str, str]]:
    """(verb, folder/stack, outcome) of each line of gitops' summary in the job's log
    (gitlab-ci-local repeats a failed job's last lines below it, indented: not those)."""
    block = output.split("===== gitops ", 1)[1]
    return re.findall(r"^(?:preview|up) >\s+(preview|up)\s+(\S+)\s+(ok|FAILED|skipped)\s+[\d.]+ s$", block, re.M)


def test_a_merge_request_touching_one_tenant_previews_exactly_it_with_the_policy_pack(forge):
    head = forge.change("initech-motd", "initech: a new motd", lambda d: (d / "stacks" / "Pulumi.initech-test.yaml")
                        .write_text(tenant(forge.out / "initech-test", "welcome to initech, now on GFS2")))
    rc, output = forge.mr("merge request: initech's stack file", head)
    assert rc == 0
    assert summary(output) == [("preview", "stacks/initech-test", "ok")]
    assert "gitops: 1 changed file(s)" in output and "stacks/Pulumi.initech-test.yaml" in output
    assert "gitops: 1 of 1 stack(s) ok" in output
    assert "Previewing update (initech-test)" in output and "hooli-test" not in output
    assert re.search(r"^\S+\s*>?\s*gfs2-cluster\|local\|\S+/policy\s+0\.0\.1$", output, re.M), "no policy pack ran"
    assert f"state: PostgreSQL postgres://pulumi@127.0.0.1:{forge.server.port}/pulumi" in output
    # The preview made the stack in the team's database, changed nothing, and leaked nothing.
    assert "pulumi/.pulumi/stacks/gfs2-cluster/initech-test.json" in forge.state_rows("initech-test", "stacks")
    assert forge.state_rows("hooli-test", "stacks") == []
    assert not forge.out.exists()
    assert forge.server.password not in output and PASSPHRASE not in output
    assert forge.deploy_key.splitlines()[1] not in output


def test_the_merge_to_the_default_branch_updates_that_tenant(forge):
    before, after = forge.merge("initech-motd")
    rc, output = forge.push_to_main("merge to main: initech's stack file", before, after)
    assert rc == 0
    assert summary(output) == [("up", "stacks/initech-test", "ok")]
    assert "Updating (initech-test)" in output and "hooli-test" not in output
    out = forge.out / "initech-test"
    assert (out / "motd").read_text() == "welcome to initech, now on GFS2"
    # Its SSH key came from the CI secret store, on stdin, and never into the log.
    # (pulumi config set takes a value from stdin without its final newline)
    assert (out / "deploy.key").read_text() == forge.deploy_key.rstrip("\n")
    assert forge.deploy_key.splitlines()[1] not in output
    assert not (forge.out / "hooli-test").exists()
    assert [k.rsplit(".", 2)[1] for k in forge.state_rows("initech-test", "history")] == ["checkpoint", "history"]
    assert forge.server.password not in output and PASSPHRASE not in output


def test_a_stack_the_policy_refuses_fails_the_pipeline_and_its_merge_updates_nothing(forge):
    bad = "printf '%s\\n' '-----BEGIN OPENSSH PRIVATE KEY-----' > id_deploy"
    head = forge.change("umbrella", "umbrella: a new tenant", lambda d: (d / "stacks" / "Pulumi.umbrella-test.yaml")
                        .write_text(tenant(forge.out / "umbrella-test", "welcome to umbrella", afterWrite=bad)))
    rc, output = forge.mr("merge request: a tenant the policy refuses", head)
    assert rc != 0
    assert summary(output) == [("preview", "stacks/umbrella-test", "FAILED")]
    assert "no-secret-in-command-text" in output and "after-write: its create text holds a private key" in output
    assert "gitops: 0 of 1 stack(s) ok; not ok: stacks/umbrella-test" in output
    assert re.search(r"FAIL\s+preview", output), "gitlab-ci-local did not fail the preview job"
    # Merged all the same, its update stops at the policy before changing anything.
    before, after = forge.merge("umbrella")
    rc, output = forge.push_to_main("merge to main: the refused tenant", before, after)
    assert rc != 0
    assert summary(output) == [("up", "stacks/umbrella-test", "FAILED")]
    assert "after-write: its create text holds a private key" in output
    assert not (forge.out / "umbrella-test").exists()
    assert (forge.out / "initech-test" / "motd").exists()
