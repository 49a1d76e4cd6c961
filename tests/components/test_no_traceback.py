"""Every key of every example stack set to odd values: the way in answers with a SpecError
or a stack that builds, and the program then runs under mocks to the end. Nothing a
stack file can hold ends in a traceback."""

from __future__ import annotations

import pytest

import components.stack_input as stack_input
from bad_cases import Case, load
from conftest import SSH_KEY, example_stacks, platform_outputs, stack_config, write_files
from program_graph import capture
from spec import SpecError, build

ODD = [None, "", "\u0661", -1, 10**12, 2.5, True, [], {}, "x" * 300, "a\nb", SSH_KEY, "/", "..", {"x": 1}, [1, 2], "0"]


def key_paths(node, prefix: str = ""):
    if isinstance(node, dict):
        for k, v in node.items():
            path = f"{prefix}.{k}" if prefix else k
            yield path
            yield from key_paths(v, path)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield f"{prefix}[{i}]"
            yield from key_paths(v, f"{prefix}[{i}]")


@pytest.mark.parametrize("stack", example_stacks())
def test_odd_values_anywhere_never_end_in_a_traceback(stack, tmp_path, monkeypatch):
    accepted = []
    for path in key_paths(stack_config(stack)):
        for value in ODD:
            case = Case("odd", stack, ((path, value),), path, "")
            try:
                build(load(case).spec)
            except SpecError as e:
                assert "TEST-ONLY-SSH-KEY-MATERIAL" not in str(e), case.id
            else:
                accepted.append(case)
    write_files(tmp_path, Case("odd", stack, (), "", "").key_files())
    monkeypatch.setattr(stack_input, "ROOT", tmp_path)
    for case in accepted:
        assert capture(stack, case.config(), case.secret_values(), stack_outputs=platform_outputs()).resources(), case.id
