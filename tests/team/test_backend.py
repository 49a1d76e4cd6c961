"""Stack state in a real PostgreSQL (the team backend): a throw-away server on loopback,
the real Pulumi CLI, and the stand-in program, whose resources are files in a temporary
folder (nothing is made on any hypervisor).

Run with -s to see every engine run whole."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from team import PASSPHRASE, StandIn, clean_env, pg  # noqa: F401 (fixture)
from tools.stale_run import alive, processes_of_run

pytestmark = pytest.mark.engine

LOCKED = "the stack is currently locked by 1 lock(s)"


def wait_for(what: str, check, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.5)


def test_a_stack_lives_in_postgres_through_init_preview_up_and_destroy(pg, tmp_path):
    p = StandIn(tmp_path, pg, "team-basic", {"motd": "hello from the team backend", "issue": "Debian 12\n"})
    check = subprocess.run([sys.executable, ROOT / "tools" / "backend.py", "check"], env=p.env,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == f"state: PostgreSQL {pg.url()} (table pulumi_state; password from PGPASSWORD)"

    p.init()
    assert "pulumi/.pulumi/stacks/gfs2-cluster/team-basic.json" in p.rows("stacks")
    listed = p.pulumi("stack", "ls").stdout
    assert "team-basic" in listed

    preview = p.pulumi("preview", "--diff")
    assert "+ 3 to create" in preview.stdout
    assert not p.out.exists(), "a preview wrote files"

    up = p.pulumi("up", "--yes")
    assert "+ 3 created" in up.stdout
    assert (p.out / "motd").read_text() == "hello from the team backend"
    assert (p.out / "issue").read_text() == "Debian 12\n"
    assert p.resources() == ["default_1_2_1", "file-issue", "file-motd", "gfs2-cluster-team-basic"]
    assert [k.rsplit(".", 2)[1] for k in p.rows("history")] == ["checkpoint", "history"]  # of the one update
    p.pulumi("preview", "--expect-no-changes")

    down = p.pulumi("destroy", "--yes")
    assert "- 3 deleted" in down.stdout
    assert not (p.out / "motd").exists() and not (p.out / "issue").exists()
    assert p.resources() == []
    p.pulumi("stack", "rm", "--yes", "--preserve-config")
    # The engine keeps a .bak of a removed stack's file, as in a file backend.
    assert p.rows("stacks") == ["pulumi/.pulumi/stacks/gfs2-cluster/team-basic.json.bak"]
    assert "team-basic" not in p.pulumi("stack", "ls").stdout


def test_two_ups_started_at_once_one_runs_the_other_is_refused_and_nothing_is_lost(pg, tmp_path):
    p = StandIn(tmp_path, pg, "team-race", {"motd": "v1"}, holdSeconds=6)
    p.init()
    runs = [p.start("up", "--yes") for _ in range(2)]  # the same instant, no preview of either first
    outcomes = [(run, run.wait(timeout=300), run.stdout.read()) for run in runs]
    for run, rc, output in outcomes:
        print(f"\n===== pulumi up (pid {run.pid}): exit {rc} =====\n{output}")
    winners = [o for o in outcomes if o[1] == 0]
    losers = [o for o in outcomes if o[1] != 0]
    assert len(winners) == 1 and len(losers) == 1, "exactly one of two simultaneous updates must run"
    (winner, _, won), (_, _, refused) = winners[0], losers[0]
    # The refusal is clear: locked, by whom (the winner's pid), where (the lock's row,
    # credentials masked), and what to do.
    assert LOCKED in refused
    assert f"(pid {winner.pid})" in refused
    assert f"postgres://****:****@127.0.0.1:{pg.port}/pulumi/.pulumi/locks/organization/gfs2-cluster/team-race/" in refused
    assert pg.password not in won + refused
    assert "+ 3 created" in won  # the stack, the file, the hold step (default providers are not counted)
    # Nothing lost: the winner's every resource is recorded, no operation is left pending,
    # no lock is left, one update in the history, and the stack takes a next update.
    assert (p.out / "motd").read_text() == "v1"
    deployment = p.deployment()
    assert sorted(r["urn"].rsplit("::", 1)[1] for r in deployment["resources"]) == [
        "default_1_2_1", "file-motd", "gfs2-cluster-team-race", "hold"]
    assert not deployment.get("pending_operations")
    assert p.rows("locks") == []
    history = p.pulumi("stack", "history", "--json").stdout
    assert history.count('"result": "succeeded"') == 1 and '"result": "failed"' not in history
    p.pulumi("config", "set", "--path", "gfs2-cluster:files.motd", "v2")
    p.pulumi("up", "--yes")
    assert (p.out / "motd").read_text() == "v2"


def test_the_state_survives_a_restart_and_a_crash_of_the_database_server(pg, tmp_path):
    p = StandIn(tmp_path, pg, "team-restart", {"motd": "kept across restarts"})
    p.init()
    p.pulumi("up", "--yes")
    before = p.deployment()["resources"]
    first = pg.pid
    pg.restart()  # fast shutdown by the postmaster's PID, then a new server on the same data
    second = pg.pid
    assert second and second != first
    p.pulumi("preview", "--expect-no-changes")
    pg.restart(mode="immediate")  # SIGQUIT: no checkpoint, the next start replays the WAL
    assert pg.pid not in (None, second)
    assert "database system was interrupted" in (pg.dir / "server.log").read_text()
    p.pulumi("preview", "--expect-no-changes")
    assert p.deployment()["resources"] == before
    assert p.pulumi("stack", "output", "files", "--json").stdout.split() == ["[", '"motd"', "]"]


def test_a_wrong_password_is_a_clear_error_naming_the_backend_without_the_password(pg, tmp_path):
    p = StandIn(tmp_path, pg, "team-password", {"motd": "x"})
    p.init()
    wrong = "Wr0ng-" + secrets.token_hex(8)
    result = p.pulumi("preview", check=False, env={"PGPASSWORD": wrong})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f'error: unable to open state database "{pg.url()}"' in output
    assert 'password authentication failed for user "pulumi"' in output
    assert wrong not in output and pg.password not in output

    # The engine prints the URL as given: a password inside it would be in the log ...
    in_url = pg.url().replace("pulumi@", f"pulumi:{wrong}@")
    shown = p.pulumi("preview", check=False, env={"PULUMI_BACKEND_URL": in_url, "PGPASSWORD": ""})
    assert shown.returncode != 0 and wrong in shown.stdout + shown.stderr
    # ... so the project's scripts refuse such a URL first, without printing it.
    check = subprocess.run([sys.executable, ROOT / "tools" / "backend.py", "check"],
                           env=clean_env(PULUMI_BACKEND_URL=in_url, PGPASSWORD=wrong, PULUMI_CONFIG_PASSPHRASE=PASSPHRASE),
                           capture_output=True, text=True)
    print(check.stdout + check.stderr)
    assert check.returncode == 2
    assert "PULUMI_BACKEND_URL holds a password" in check.stderr
    assert wrong not in check.stdout + check.stderr
    # A team backend with neither password nor passphrase is named too.
    check = subprocess.run([sys.executable, ROOT / "tools" / "backend.py", "check"],
                           env=clean_env(PULUMI_BACKEND_URL=pg.url()), capture_output=True, text=True)
    assert check.returncode == 2
    assert "no password for the state database" in check.stderr and "team's passphrase" in check.stderr


def test_a_killed_update_leaves_a_lock_in_the_database_that_the_next_run_clears(pg, tmp_path):
    p = StandIn(tmp_path, pg, "team-killed", {"motd": "v1"}, holdSeconds=120)
    p.init()
    run_id = f"team-killed-{time.time_ns()}"
    run = p.start("up", "--yes", "--skip-preview", env={"GFS2_RUN_ID": run_id})
    try:
        wait_for("the update's lock and its hold step", lambda: p.rows("locks") and any(
            b"sleep\0" in open(f"/proc/{pid}/cmdline", "rb").read() for pid in processes_of_run(run_id)))
        (tmp_path / "run").write_text(f"{run_id} {run.pid}\n")  # as tools/stack.sh records a run
        run.kill()  # SIGKILL: the engine cannot release its lock
        run.wait()
        assert len(p.rows("locks")) == 1
        refused = p.pulumi("up", "--yes", check=False)
        assert refused.returncode != 0 and LOCKED in refused.stdout + refused.stderr

        cleared = subprocess.run([sys.executable, ROOT / "tools" / "stale_run.py", tmp_path / "run", p.stack],
                                 env=p.env, capture_output=True, text=True, timeout=120)
        print(cleared.stdout + cleared.stderr)
        assert cleared.returncode == 0
        assert f"removed a stale lock of pulumi process {run.pid}" in cleared.stdout
        assert f"left by the killed run {run_id}" in cleared.stdout
        assert p.rows("locks") == [] and processes_of_run(run_id) == []
    finally:
        for pid in processes_of_run(run_id):
            if alive(pid):
                subprocess.run(["kill", "-9", str(pid)])
    p.pulumi("config", "set", "gfs2-cluster:holdSeconds", "0")
    p.pulumi("up", "--yes")
    assert (p.out / "motd").read_text() == "v1"
    assert p.rows("locks") == []
