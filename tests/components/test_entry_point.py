"""Every bad stack of the suite through the real program, as `pulumi preview` runs it:
__main__.py under Pulumi mocks, the engine's config (secrets marked as secrets) read by
components/stack_input.py, and the key files on disk. Each ends in one error that names
its key path (a pulumi.RunError, which the engine prints without a traceback), quotes no
secret, and comes before the first resource."""

from __future__ import annotations

import pulumi
import pytest

import components.stack_input as stack_input
from bad_cases import ALL, Case
from conftest import example_stacks, platform_outputs, write_files
from program_graph import capture


def run(case: Case, tmp_path, monkeypatch) -> tuple[Exception, dict]:
    write_files(tmp_path, case.key_files())
    monkeypatch.setattr(stack_input, "ROOT", tmp_path)
    registered: dict = {}
    with pytest.raises(Exception) as e:
        capture(
            case.stack,
            case.config(),
            case.secret_values(),
            stack_outputs=platform_outputs(),
            plain=case.plain,
            registered=registered,
        )
    return e.value, registered


@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
def test_a_bad_stack_stops_the_program_with_one_error_naming_its_key(case, tmp_path, monkeypatch):
    error, registered = run(case, tmp_path, monkeypatch)
    assert type(error) is pulumi.RunError, f"{type(error).__name__}: {error}"
    message = str(error)
    head, *lines = message.splitlines()
    assert head == "invalid stack config:"
    assert lines and all(line.startswith("  ") and ": " in line for line in lines), message
    assert len(lines) == len(set(lines)), f"a problem is reported twice: {message}"
    assert any(line.startswith(f"  {case.path}: ") for line in lines), message
    assert case.words in message
    for text in case.never_shown():
        assert text not in message, f"the error shows {text[:12]}..."
    assert registered == {}, f"registered before the error: {[r.name for r in registered.values()]}"


def test_every_case_of_the_suite_is_run_here():
    assert len(ALL) >= 200 and len({c.id for c in ALL}) == len(ALL)


@pytest.mark.parametrize("stack", example_stacks())
def test_the_example_stacks_pass_the_same_way_in(stack, tmp_path, monkeypatch):
    case = Case("good", stack, (), "", "")
    write_files(tmp_path, case.key_files())
    monkeypatch.setattr(stack_input, "ROOT", tmp_path)
    graph = capture(stack, case.config(), case.secret_values(), stack_outputs=platform_outputs())
    assert graph.resources()


def test_several_mistakes_are_reported_at_once(tmp_path, monkeypatch):
    case = Case(
        "several",
        "globex-prod",
        (
            ("storage.volumeGroups[0].logicalVolumes[0].size", "500G"),
            ("storage.volumeGroups[0].logicalVolumes[0].filesystem.mountOptions", ["localflocks"]),
            ("fencing.method", "fence_virsh"),
            ("storage.exports[1].server", "iscsi1"),
            ("storage.exports[1].port", 22),
        ),
        "fencing.method",
        "fence_virsh",
        secrets={"clusterAuthKey": "not base64!"},
    )
    error, registered = run(case, tmp_path, monkeypatch)
    paths = [line.split(": ", 1)[0].strip() for line in str(error).splitlines()[1:]]
    assert set(paths) >= {
        "storage.volumeGroups[0].logicalVolumes[0].size",
        "storage.volumeGroups[0].logicalVolumes[0].filesystem.mountOptions[0]",
        "fencing.method",
        "storage.exports[1].port",
        "clusterAuthKey",
    }
    assert registered == {}
