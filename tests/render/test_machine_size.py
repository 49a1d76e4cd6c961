"""A guest's vCPUs and memory (render/machine_size.py, host_machine_size.sh): shellcheck,
what a changed size re-runs (under mocks), and what the step does, run for real against
a stand-in `virsh` and `ssh` first on PATH (inside the test only) that record every call;
the stand-in ssh powers the stand-in domain off when asked to."""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from conftest import SSH_KEY, program, shellcheck, stack_config, topology_of
from render.machine_size import machine_size
from render.script import node_script, values_of

# SC2034: create and delete share one set of values, each uses part of them.
# SC2016: the cib tool is a Python program quoted as one value.
# SC2209: a value that is also a command's name (member m4; m4 is a macro processor).
EXCLUDED = ("SC2034", "SC2016", "SC2209")


@pytest.mark.usefixtures("local_key_files")
@pytest.mark.parametrize("stack", ["local", "globex-prod", "acme-prod"])
def test_rendered_steps_pass_shellcheck(stack):
    topo = topology_of(stack_config(stack))
    for g in topo.guests:
        for text in (machine_size(topo, g).create, machine_size(topo, g).delete):
            res = shellcheck(text, *EXCLUDED)
            assert res.returncode == 0, f"{g.name}: {res.stdout}"


@pytest.mark.usefixtures("local_key_files")
def test_servers_and_legacy_members_refuse_a_change_and_members_wait_for_their_clones():
    local = topology_of(stack_config("local"))
    by_name = {g.name: values_of(machine_size(local, g).create) for g in local.guests}
    assert "storage server" in by_name["s1"]["REFUSAL"] and by_name["s1"]["CLONES"] == ""
    assert by_name["m2"]["REFUSAL"] == "" and by_name["m2"]["CLONES"].split() == ["locking-clone", "fs-shared-clone"]
    assert by_name["m2"]["SIZE_KEY"] == "members" and by_name["s1"]["SIZE_KEY"] == "storage.servers[0]"
    # After the restart, the creation's watch for a guest hung in early boot.
    assert "DOMAIN=g2-local-dev-m2" in by_name["m2"]["BOOT_WATCH"] and "early boot" in by_name["m2"]["BOOT_WATCH"]
    acme = topology_of(stack_config("acme-prod"))
    assert all("current generation" in values_of(machine_size(acme, g).create)["REFUSAL"]
               for g in acme.guests if g.role == "member")


@pytest.mark.usefixtures("local_key_files")
def test_a_changed_member_size_reruns_the_machine_size_steps_and_nothing_else():
    before = copy.deepcopy(stack_config("local"))
    after = copy.deepcopy(before)
    after["members"]["vcpu"] = 2
    old = {r.name: r.inputs.get("create", "") for r in program("local", before).commands()}
    graph = program("local", after)
    new = {r.name: r.inputs.get("create", "") for r in graph.commands()}
    assert sorted(n.removeprefix("local-dev-") for n in old if old[n] != new[n]) == [
        "m1-machine-size", "m2-machine-size", "m3-machine-size"]
    domain = graph.named("m2-domain")
    assert domain.inputs["vcpu"] == 2 and {"vcpu", "memory"} <= set(domain.ignore_changes), "the domain would be replaced"
    chain = [graph.named(f"{g}-machine-size") for g in ("s1", "m1", "m2", "m3")]
    for earlier, later in zip(chain, chain[1:]):
        assert graph.depends(later, earlier), f"{later.name} does not wait for {earlier.name}"
    assert graph.depends(chain[0], graph.named("shared-grow")), "a restart while the storage grows"
    for g in ("s1", "m1", "m2", "m3"):  # directly (see test_storage_size)
        assert graph.named(f"{g}-domain").urn in graph.named(f"{g}-machine-size").dependencies, g


FAKE_VIRSH = r"""#!/bin/bash
echo "virsh $*" >>"$CALLS"
case " $* " in
  *" dumpxml "*) printf "<domain>\n  <memory unit='KiB'>%s</memory>\n  <vcpu placement='static'>%s</vcpu>\n</domain>\n" "$HAVE_KIB" "$HAVE_VCPU" ;;
  *" domstate "*) cat "$STATE" ;;
  *" start "*) echo running >"$STATE" ;;
esac
"""
FAKE_SSH = r"""#!/bin/bash
key=$2
echo "ssh key-mode=$(stat -c %a "$key") ${*: -1}" >>"$CALLS"
grep -q TEST-ONLY-SSH-KEY-MATERIAL "$key" || { echo "no key" >&2; exit 9; }
case ${*: -1} in
  "systemctl poweroff") echo "shut off" >"$STATE" ;;
esac
"""


def run_step(tmp_path: Path, have_vcpu: int, have_mib: int, want_vcpu: int, want_mib: int, state: str = "running",
             guest: str = "m2"):
    topo = topology_of(stack_config("local"))
    g = next(x for x in topo.guests if x.name == guest)
    g = dataclasses.replace(g, size=g.size.model_copy(update={"vcpu": want_vcpu, "memory_mib": want_mib}))
    values = {k.lower(): v for k, v in values_of(machine_size(topo, g).create).items() if k != "STEP"}
    if values["boot_watch"]:  # the real watch dials the guest: here it only says it ran
        values["boot_watch"] = 'echo "boot watch" >>"$CALLS"'
    script = node_script(f"machine-size-{guest}", "host_machine_size.sh", "nothing.sh", **values).create
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("virsh", FAKE_VIRSH), ("ssh", FAKE_SSH)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    calls, state_file = tmp_path / "calls", tmp_path / "state"
    calls.write_text("")
    state_file.write_text(state + "\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls), "STATE": str(state_file),
           "HAVE_VCPU": str(have_vcpu), "HAVE_KIB": str(have_mib * 1024), "TMPDIR": str(tmp_path)}
    res = subprocess.run(["bash", "-c", script], input=SSH_KEY, capture_output=True, text=True, env=env, check=False)
    return res, [c for c in calls.read_text().splitlines() if "dumpxml" not in c and "domstate" not in c]


@pytest.mark.usefixtures("local_key_files")
def test_the_same_size_changes_nothing(tmp_path):
    res, calls = run_step(tmp_path, 1, 1024, 1, 1024)
    assert res.returncode == 0, res.stderr
    assert calls == [] and "result: unchanged" in res.stdout


@pytest.mark.usefixtures("local_key_files")
def test_a_raised_size_lets_the_member_leave_then_restarts_it_and_waits_for_it(tmp_path):
    res, calls = run_step(tmp_path, 1, 1024, 2, 1280)
    assert res.returncode == 0, res.stderr
    virsh = "virsh -q -c qemu:///system"
    assert calls == [
        "ssh key-mode=600 systemctl stop pacemaker && systemctl stop corosync",
        "ssh key-mode=600 systemctl poweroff",
        f"{virsh} setvcpus g2-local-dev-m2 2 --config --maximum",
        f"{virsh} setvcpus g2-local-dev-m2 2 --config",
        f"{virsh} setmaxmem g2-local-dev-m2 1310720 --config",
        f"{virsh} setmem g2-local-dev-m2 1310720 --config",
        f"{virsh} start g2-local-dev-m2",
        "boot watch",
        "ssh key-mode=600 true",
        "ssh key-mode=600 python3 - wait-started-on m2 600 locking-clone fs-shared-clone",
    ]
    assert "TEST-ONLY-SSH-KEY-MATERIAL" not in res.stdout + res.stderr
    assert not list(tmp_path.glob("tmp.*")), "the key file was left behind"


@pytest.mark.usefixtures("local_key_files")
def test_a_lowered_size_sets_the_current_values_before_the_maximum(tmp_path):
    res, calls = run_step(tmp_path, 2, 2048, 1, 1024)
    assert res.returncode == 0, res.stderr
    order = [c.split()[4] + (" max" if "--maximum" in c else "") for c in calls if c.startswith("virsh") and "set" in c]
    assert order == ["setvcpus", "setvcpus max", "setmem", "setmaxmem"]


@pytest.mark.usefixtures("local_key_files")
def test_a_member_left_powered_off_by_an_interrupted_run_is_started_and_awaited(tmp_path):
    res, calls = run_step(tmp_path, 2, 1024, 2, 1024, state="shut off")
    assert res.returncode == 0, res.stderr
    assert calls[0] == "virsh -q -c qemu:///system start g2-local-dev-m2" and calls[-1].endswith("fs-shared-clone")


@pytest.mark.usefixtures("local_key_files")
def test_a_storage_servers_change_is_refused_naming_the_key_before_anything_changes(tmp_path):
    res, calls = run_step(tmp_path, 1, 512, 2, 512, guest="s1")
    assert res.returncode != 0
    assert "storage.servers[0].vcpu" in res.stderr and "nothing was changed" in res.stderr
    assert calls == []
