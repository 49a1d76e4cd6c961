"""The whole program under Pulumi mocks: what it registers, in which order, and that no
secret reaches a command's text."""

from __future__ import annotations

import base64
import json
import runpy
from collections import Counter
from dataclasses import dataclass, field

import pulumi
import pytest
from pulumi.runtime.mocks import MockMonitor

from conftest import ROOT, example_stacks, stack_config

PROJECT = "gfs2-cluster"
SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nTEST-ONLY-SSH-KEY-MATERIAL\n-----END OPENSSH PRIVATE KEY-----\n"
FENCE_KEY = base64.b64encode(b"TEST-ONLY-FENCE-KEY" * 20).decode()
AUTH_KEY = base64.b64encode(b"TEST-ONLY-COROSYNC-AUTHKEY" * 10).decode()
SECRETS = {"sshPrivateKey": SSH_KEY, "fenceKey": FENCE_KEY, "clusterAuthKey": AUTH_KEY}


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict
    urn: str
    parent: str
    dependencies: set = field(default_factory=set)
    protect: bool = False


class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args):
        outputs = dict(args.inputs)
        if args.typ.startswith("command:"):
            outputs.setdefault("stdout", "")
        return [f"{args.name}-id", outputs]

    def call(self, args):
        return {}


class RecordingMonitor(MockMonitor):
    def __init__(self, mocks, registered):
        super().__init__(mocks)
        self.registered = registered

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registered[response.urn] = Registered(
                request.type,
                request.name,
                json.loads(json.dumps(_plain(request.object))),
                response.urn,
                request.parent,
                set(request.dependencies),
                request.protect,
            )
        return response


SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # Pulumi's marker of a secret value


def _plain(struct):
    from google.protobuf import json_format

    return _unwrap(json_format.MessageToDict(struct))


def _unwrap(value):
    """Secret values become {"secret": value}; everything else stays as it is."""
    if isinstance(value, dict):
        if value.get("4dabf18193072939515e22adb298388d") == SECRET_SIG:
            return {"secret": _unwrap(value.get("value"))}
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


class Program:
    """The registered resources of one run of __main__.py."""

    def __init__(self, registered: dict[str, Registered]):
        self.by_urn = registered
        self.by_name = {r.name: r for r in registered.values()}

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.by_urn.values() if r.type == typ]

    def named(self, suffix: str) -> Registered:
        matches = [r for r in self.by_urn.values() if r.name.endswith(suffix)]
        assert len(matches) == 1, f"{suffix}: {[m.name for m in matches]}"
        return matches[0]

    def depends(self, later: Registered, earlier: Registered) -> bool:
        """Whether later (transitively) waits for earlier."""
        seen, todo = set(), [later.urn]
        while todo:
            urn = todo.pop()
            for dep in self.by_urn[urn].dependencies if urn in self.by_urn else ():
                if dep == earlier.urn:
                    return True
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return False

    def commands(self) -> list[Registered]:
        return [r for r in self.by_urn.values() if r.type in ("command:remote:Command", "command:local:Command")]


def run(stack: str, config: dict | None = None, secrets: dict | None = None) -> Program:
    config = stack_config(stack) if config is None else config
    secrets = ({} if stack == "local" else SECRETS) if secrets is None else secrets
    registered: dict[str, Registered] = {}
    pulumi.runtime.set_mocks(Mocks(), project=PROJECT, stack=stack, preview=True,
                             monitor=RecordingMonitor(Mocks(), registered))
    values = {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    values.update({f"{PROJECT}:{k}": v for k, v in secrets.items()})
    pulumi.runtime.set_all_config(values, [f"{PROJECT}:{k}" for k in secrets])

    @pulumi.runtime.test
    def program():
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

    program()
    return Program(registered)


@pytest.fixture(autouse=True)
def local_secret_files(tmp_path, monkeypatch):
    """The local stack reads key files under .state/secrets/: use throw-away ones."""
    import components.stack_input as stack_input

    folder = tmp_path / ".state" / "secrets" / "local-dev"
    folder.mkdir(parents=True)
    (folder / "id_ed25519").write_text(SSH_KEY)
    (folder / "id_ed25519.pub").write_text("ssh-ed25519 AAAATEST test\n")
    (folder / "fence_xvm.key").write_bytes(b"TEST-ONLY-FENCE-KEY" * 20)
    (folder / "corosync.key").write_bytes(b"TEST-ONLY-COROSYNC-AUTHKEY" * 10)
    monkeypatch.setattr(stack_input, "ROOT", tmp_path)


EXPECTED = {
    # stack: {type: count}
    "local": {
        "libvirt:index/network:Network": 1,
        "libvirt:index/domain:Domain": 4,
        "libvirt:index/volume:Volume": 1 + 4 + 1,  # image, roots, one data disk
        "libvirt:index/pool:Pool": 1,
        "command:local:Command": 1,  # fence_virtd on this machine
        # per guest: ready + base (8); export 1; imports 3; fence keys 3; membership 3;
        # locking 3 + ready 1; vg 1; mkfs 1; mount 1; status 1
        "command:remote:Command": 8 + 1 + 3 + 3 + 3 + 4 + 1 + 1 + 1 + 1,
    },
    "globex-prod": {
        "libvirt:index/network:Network": 0,
        "libvirt:index/domain:Domain": 6,
        "libvirt:index/volume:Volume": 1 + 6 + 2,
        "command:local:Command": 0,
        # ready+base 12; exports 2; imports 8; bridge 1 + fence_virtd 1 (remote host);
        # fence keys 4; membership 4; locking 4+1; vg 1; mkfs 2; mounts 2; pcsd 4; status 1
        "command:remote:Command": 12 + 2 + 8 + 2 + 4 + 4 + 5 + 1 + 2 + 2 + 4 + 1,
    },
    "acme-prod": {
        "libvirt:index/domain:Domain": 4,
        # ready+base 8; export 1; imports 3; bridge + fence_virtd + cpu caps (3) 5;
        # fence keys 4 (gnbd1 is a cman node); cman 4; clvmd 3 + quorum 1; vg 1; mkfs 1;
        # fstab mounts 3; ricci 3; status 1
        "command:remote:Command": 8 + 1 + 3 + 5 + 4 + 4 + 4 + 1 + 1 + 3 + 3 + 1,
    },
}


@pytest.mark.parametrize("stack", example_stacks())
def test_resource_counts(stack):
    prog = run(stack)
    counts = Counter(r.type for r in prog.by_urn.values())
    for typ, n in EXPECTED[stack].items():
        assert counts[typ] == n, f"{typ}: {counts[typ]} != {n}"


@pytest.mark.parametrize("stack", ["local", "globex-prod"])
def test_current_generation_order(stack):
    prog = run(stack)
    topo_members = [r for r in prog.commands() if r.name.endswith("-ready") and "-locking-" in r.name]
    cluster_ready = topo_members[0]
    for lock in [r for r in prog.commands() if "-locking-m" in r.name]:
        assert prog.depends(cluster_ready, lock), f"lock manager setup {lock.name} before cluster ready"
    for key in [r for r in prog.commands() if "-fencing-key-" in r.name]:
        assert prog.depends(cluster_ready, key), "fencing armed before cluster ready"
    for mkfs in [r for r in prog.commands() if r.name.endswith("-mkfs")]:
        assert prog.depends(mkfs, cluster_ready), "mkfs after lock start on every member (and after stonith)"
        mount = prog.named(mkfs.name.replace("-mkfs", "-mount"))
        assert prog.depends(mount, mkfs), "mounts after mkfs"
    for export in [r for r in prog.commands() if r.name.endswith("-export")]:
        imports = [r for r in prog.commands() if r.name.startswith(export.name.replace("-export", "-import-"))]
        assert imports and all(prog.depends(i, export) for i in imports), "exports before imports"


def test_legacy_generation_order():
    prog = run("acme-prod")
    quorum = prog.named("-locking-ready")
    for cman in [r for r in prog.commands() if "-membership-" in r.name]:
        assert prog.depends(quorum, cman)
    mkfs = prog.named("-www-mkfs")
    assert prog.depends(mkfs, quorum)
    for mount in [r for r in prog.commands() if "-www-mount-" in r.name]:
        assert prog.depends(mount, mkfs)


def _texts(r: Registered) -> str:
    return "\n".join(str(r.inputs.get(k, "")) for k in ("create", "update", "delete", "connection", "environment"))


@pytest.mark.parametrize("stack", example_stacks())
def test_no_secret_in_any_command_text(stack):
    prog = run(stack)
    secret_values = [FENCE_KEY, AUTH_KEY, "TEST-ONLY-SSH-KEY-MATERIAL"]
    for r in prog.commands():
        text = r.inputs.get("create", "") + r.inputs.get("delete", "") + r.inputs.get("update", "")
        for value in secret_values:
            assert value not in text, f"{r.name} carries a secret in its command text"
    with_stdin = [r for r in prog.commands() if r.inputs.get("stdin")]
    assert with_stdin, "the fence key and authkey travel on stdin"


def test_secrets_reach_the_nodes_on_stdin_as_pulumi_secrets():
    prog = run("local")
    stdins = [r.inputs["stdin"] for r in prog.commands() if r.inputs.get("stdin")]
    assert {"secret": FENCE_KEY} in stdins and {"secret": AUTH_KEY} in stdins
    assert all(isinstance(v, dict) and "secret" in v for v in stdins)


def test_two_tenants_share_no_names_bridges_or_fence_ports():
    a = run("local")
    other = stack_config("local")
    other["tenant"], other["network"]["vlanId"] = "other", 11
    other["network"]["cidr"] = "10.77.11.0/24"
    b = run("local", other)

    def libvirt_names(prog):
        return {r.inputs.get("name") for r in prog.by_urn.values() if r.type.startswith("libvirt:index/")}

    assert not libvirt_names(a) & libvirt_names(b)
    bridge = lambda prog: prog.of_type("libvirt:index/network:Network")[0].inputs["bridge"]  # noqa: E731
    assert bridge(a) != bridge(b)
    fence = lambda prog: [r for r in prog.commands() if r.name.endswith("fence-virtd")][0].inputs["create"]  # noqa: E731
    assert "PORT=20010" in fence(a) and "PORT=20011" in fence(b)


def test_user_data_is_protected_unless_the_stack_opts_out():
    prog = run("globex-prod")
    data_volumes = [r for r in prog.of_type("libvirt:index/volume:Volume") if r.inputs["name"].endswith(".raw")]
    assert data_volumes and all(r.protect for r in data_volumes)
    assert all(r.protect for r in prog.commands() if r.name.endswith(("-create", "-mkfs")))
    lab = run("local")
    assert not any(r.protect for r in lab.by_urn.values())


def test_every_child_stays_inside_its_component():
    prog = run("local")
    roots = [r for r in prog.by_urn.values() if r.type == "gfs2-cluster:index:TenantCluster"]
    assert len(roots) == 1
    for r in prog.by_urn.values():
        if r is not roots[0]:
            assert r.parent and not r.parent.endswith("pulumi:pulumi:Stack::gfs2-cluster-local"), f"{r.name} escapes"
