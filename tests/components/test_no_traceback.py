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

# Keys the example stacks leave out, swept too.
OPTIONAL = [
    "network.hostAddress", "network.bridge", "fencing.port", "fencing.multicastAddress", "fencing.keyFile",
    "fencing.labWithoutFencing", "members.hypervisor", "members.addresses", "members.names", "members.cpuCapPercent",
    "storage.exports[0].port", "storage.exports[0].device", "storage.servers[0].kind", "storage.servers[0].hypervisor",
    "cluster.twoNode", "cluster.name", "cluster.authKeyFile", "image.kernel", "image.initrd", "image.boot",
    "storage.volumeGroups[0].logicalVolumes[0].size", "storage.volumeGroups[0].logicalVolumes[0].filesystem.journals",
    "storage.volumeGroups[0].logicalVolumes[0].filesystem.mountOptions",
    "storage.volumeGroups[0].logicalVolumes[0].filesystem.lockTable", "ssh.user", "ssh.publicKey", "ssh.privateKeyFile",
    "selinux", "platform.stack", "hypervisors[0].trunk", "hypervisors[1]", "storage.exports[1]", "sshPrivateKey",
]
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
    accepted, specs = [], [load(Case("odd", stack, (), "", "")).spec]
    for path in dict.fromkeys([*key_paths(stack_config(stack)), *OPTIONAL]):
        for value in ODD:
            case = Case("odd", stack, ((path, value),), path, "")
            try:
                spec = load(case).spec
                build(spec)
            except SpecError as e:
                assert "TEST-ONLY-SSH-KEY-MATERIAL" not in str(e), case.id
            else:
                # The program runs once per stack that differs (null often means "not given").
                if spec not in specs:
                    specs.append(spec)
                    accepted.append(case)
    write_files(tmp_path, Case("odd", stack, (), "", "").key_files())
    monkeypatch.setattr(stack_input, "ROOT", tmp_path)
    for case in accepted:
        assert capture(stack, case.config(), case.secret_values(), stack_outputs=platform_outputs()).resources(), case.id
