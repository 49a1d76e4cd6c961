"""What tools/stale_run.py clears of a killed run in a file backend, found under the
project's own name."""

from __future__ import annotations

from spec.vocabulary import PROJECT
from tools.stale_run import repair_metadata_files


def test_only_the_stacks_unreadable_metadata_files_are_removed(tmp_path, monkeypatch):
    pulumi = tmp_path / ".pulumi"
    stacks, locks = pulumi / "stacks" / PROJECT, pulumi / "locks" / "organization" / PROJECT / "local"
    half_written = [stacks / "local.json.attrs", locks / "1.json.attrs"]
    kept = [stacks / "other.json.attrs", stacks / "local.json.bak.attrs"]
    for path in half_written + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    kept[1].write_text("{}")
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{tmp_path}")
    repair_metadata_files("local")
    assert [p.exists() for p in half_written + kept] == [False, False, True, True]
