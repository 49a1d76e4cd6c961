"""Every bad stack of the test suite, as data: which example stack it starts from, what it
changes, and the key path and words its error must say. tests/spec runs them through
spec.load; tests/components/test_entry_point.py runs the same cases through the real
program, as `pulumi preview` would.

Each case belongs to a class of holes (issue 11): sizes, collisions, reachability, fs
(file-system semantics), paths, secrets, fencing, cman, or spec (the first rules).
"""

from __future__ import annotations

import base64
import copy
import errno
import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from conftest import AUTH_KEY, LOCAL_KEY_FILES, SECRET_TEXTS, SECRETS, SSH_KEY, stack_config
from program_graph import engine_config
from spec.load import SpecError, StackInput, load_stack
from spec.vocabulary import PROJECT

DELETE = object()
LOCAL_KEYS = ".state/secrets/local-dev"
ENCRYPTED_KEY = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nTEST-ONLY-ENCRYPTED-KEY-BODY\n-----END RSA PRIVATE KEY-----\n"


def set_path(cfg: dict, path: str, value: Any) -> None:
    """Sets a dotted path with [i] indexes in a config dict; value DELETE removes it."""
    keys: list = []
    for part in path.split("."):
        name, *idx = part.replace("]", "").split("[")
        keys.append(name)
        keys += [int(i) for i in idx]
    node = cfg
    for k in keys[:-1]:
        node = node.setdefault(k, {}) if isinstance(node, dict) else node[k]
    if value is DELETE:
        del node[keys[-1]]
    elif isinstance(node, list) and keys[-1] == len(node):
        node.append(value)
    else:
        node[keys[-1]] = value


def _short(value: Any) -> str:
    """VALUE for a test id: short, and still telling long values apart."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:32]}…{hashlib.sha1(text.encode()).hexdigest()[:6]}"


@dataclass(frozen=True)
class Case:
    cls: str
    stack: str
    changes: tuple  # (key path, value), applied in order
    path: str  # the key path the error must name
    words: str  # what its message must say
    # Secret config values to set (None: unset) over the stack's usual ones.
    secrets: Mapping[str, Optional[str]] = field(default_factory=dict)
    files: Mapping[str, bytes] = field(default_factory=dict)  # key files to write (project-relative)
    plain: tuple[str, ...] = ()  # secret keys set without --secret
    hidden: tuple[str, ...] = ()  # text no message may contain

    @property
    def id(self) -> str:
        parts = [f"-{p}" if v is DELETE else f"{p}={_short(v)}" for p, v in self.changes]
        parts += [f"secret {k}={_short(v)}" for k, v in self.secrets.items()]
        parts += [f"file {name.rsplit('/', 1)[-1]}={data[:12]!r}" for name, data in self.files.items()]
        parts += [f"plain {k}" for k in self.plain]
        return f"{self.cls}:{self.stack}:{','.join(parts)}"

    def config(self) -> dict:
        cfg = copy.deepcopy(stack_config(self.stack))
        for path, value in self.changes:
            set_path(cfg, path, value if value is DELETE else copy.deepcopy(value))
        return cfg

    def secret_values(self) -> dict[str, str]:
        values = dict({} if self.stack == "local" else SECRETS)
        values.update(self.secrets)
        return {k: v for k, v in values.items() if v is not None}

    def key_files(self) -> dict[str, bytes]:
        return {**LOCAL_KEY_FILES, **self.files}

    def engine(self) -> tuple[dict[str, str], list[str]]:
        """The engine's config for this case: PROJECT:key -> text, and its secret keys."""
        return engine_config(self.config(), self.secret_values(), self.plain)

    def never_shown(self) -> tuple[str, ...]:
        return (*SECRET_TEXTS, *self.hidden)


def memory_reader(files: Mapping[str, bytes]) -> Callable[[str], bytes]:
    def read(path: str) -> bytes:
        if path.endswith("/") or path in {name.rsplit("/", 1)[0] for name in files}:
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        if path not in files:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return files[path]

    return read


def load(case: Case) -> StackInput:
    """The case through spec.load.load_stack, its key files in memory."""
    raw, secret_keys = case.engine()
    return load_stack(raw, PROJECT, frozenset(secret_keys), memory_reader(case.key_files()))


def assert_refused(case: Case) -> SpecError:
    """The case is refused with an issue at its key path saying its words, and no message
    shows what it must not."""
    try:
        load(case)
    except SpecError as e:
        matching = [i for i in e.issues if i.path == case.path]
        assert matching, f"no issue at {case.path}: {e}"
        assert any(case.words in i.message for i in matching), f"{case.path}: {matching}"
        for text in case.never_shown():
            assert text not in str(e), f"{case.id}: the message shows {text[:12]}..."
        return e
    raise AssertionError(f"{case.id} was accepted")


def _cases(cls: str, stack: str, rows: list[tuple], **common) -> list[Case]:
    """One Case per row (changes, path, words[, extra fields]); a change is (path, value)
    or a list of them."""
    out = []
    for changes, path, words, *extra in rows:
        changes = tuple(changes) if isinstance(changes, list) else (changes,) if changes else ()
        out.append(Case(cls, stack, changes, path, words, **{**common, **(extra[0] if extra else {})}))
    return out


FS = "storage.volumeGroups[0].logicalVolumes[0].filesystem"
LV = "storage.volumeGroups[0].logicalVolumes"
EXPORT1 = {"name": "data2", "protocol": "nbd", "server": "s1", "sizeGib": 1}


def _exports(n: int) -> list[dict]:
    return [{"name": f"d{k}", "protocol": "nbd", "server": "s1", "sizeGib": 1, "port": 10809 + k} for k in range(n)]


def _external(address: str = "10.23.0.50", **more) -> list:
    """globex-prod with its first export from an external server."""
    return [
        ("storage.servers", [{"name": "san1", "kind": "external", "address": address, **more}]),
        ("storage.exports", [{"name": "lun1", "protocol": "iscsi", "server": "san1", "device": "/dev/sdb"}]),
        ("storage.volumeGroups[0].exports", ["lun1"]),
        (f"{LV}[0].size", "10G"),
    ]


def _uri(uri: str) -> tuple:
    return ("hypervisors[0].uri", uri)


KVM = "qemu+ssh://root@kvm1.example.net/system"

# The first bad inputs, from the example stacks: types, formats and the first rules.
SPEC = (
    _cases("spec", "local", [
        (("tenant", "Local"), "tenant", "lowercase"),
        (("tenant", "a-very-long-tenant"), "tenant", "12"),
        (("environment", "dev-1"), "environment", "lowercase letters"),
        (("generation", "rhel5"), "generation", "legacy"),
        (_uri("http://host/"), "hypervisors[0].uri", "driver"),
        (("hypervisors[0].domainType", "lxc"), "hypervisors[0].domainType", "qemu"),
        (("network.vlanId", 4095), "network.vlanId", "4094"),
        (("network.cidr", "10.77.10.0/33"), "network.cidr", "IPv4"),
        (("members.vcpu", 0), "members.vcpu", "1 to 64"),
        (("members.memoryMib", 128), "members.memoryMib", "256"),
        (("members.cpuShares", 1), "members.cpuShares", "2"),
        (("members.bogus", 1), "members.bogus", "allowed here"),
        (("storage.exports[0].protocol", "aoe"), "storage.exports[0].protocol", "iscsi"),
        ((f"{FS}.fsName", "a.b"), f"{FS}.fsName", "GFS2 name"),
        ((f"{FS}.fsName", "f" * 31), f"{FS}.fsName", "30"),
        ((f"{FS}.mountPoint", "srv"), f"{FS}.mountPoint", "absolute"),
        ((f"{LV}[0].size", "10 GB"), f"{LV}[0].size", "500M"),
        (("fencing.method", "fence_ipmilan"), "fencing.method", "fence_xvm"),
        (("fencing.port", 80), "fencing.port", "1024"),
        (("selinux", "on"), "selinux", "enforcing"),
        (("management", "cockpit"), "management", "pcsd"),
        (("storage.volumeGroups[0].exports", []), "storage.volumeGroups[0].exports", "at least 1"),
        (("members", DELETE), "members", "required"),
        (("storage.exports[0].protocol", "gnbd"), "storage.exports[0].protocol", "legacy"),
        (("management", "luci"), "management", "legacy"),
        (("generation", "legacy"), "image.osFamily", "centos5"),
        ((f"{FS}.lockTable", "other:shared"), f"{FS}.lockTable", "local-dev:shared"),
        ((f"{FS}.journals", 2), f"{FS}.journals", "one per member"),
        (("fencing", {"method": "none"}), "fencing.method", "labWithoutFencing"),
        (("fencing.labWithoutFencing", True), "fencing.labWithoutFencing", "remove one"),
        (("fencing.multicastAddress", "10.0.0.1"), "fencing.multicastAddress", "multicast"),
        (("members.addresses", ["10.77.10.21", "10.77.10.22", "10.78.0.1"]), "members.addresses[2]", "outside"),
        (("members.addresses", ["10.77.10.21", "10.77.10.22", "10.77.10.21"]), "members.addresses[0]", "twice"),
        (("members.addresses", ["10.77.10.21", "10.77.10.22", "10.77.10.255"]), "members.addresses[2]", "broadcast"),
        (("members.addresses", ["10.77.10.21", "10.77.10.22"]), "members.addresses", "2 addresses for 3"),
        (("members.addresses", ["10.77.10.21", "10.77.10.22", "10.77.10.11"]), "members.addresses[2]", "twice"),
        (("network.hostAddress", "10.77.10.21"), "network.hostAddress", "twice"),
        (("members.count", 1), "members", "at least 2"),
        (("members.names", ["a", "b"]), "members.count", "give one"),
        (("members.cpuCapPercent", 150), "members.cpuCapPercent", "1 vCPU"),
        (("storage.exports[0].server", "s9"), "storage.exports[0].server", "no storage server"),
        (("storage.exports[0].sizeGib", DELETE), "storage.exports[0].sizeGib", "guest"),
        (("storage.volumeGroups[0].exports", ["nope"]), "storage.volumeGroups[0].exports[0]", "no export"),
        (("hypervisors[0].domainType", "xen"), "hypervisors[0].uri", "xen://"),
        (("members.hypervisor", "elsewhere"), "members.hypervisor", "no hypervisor"),
        (("selinux", "enforcing"), "selinux", "no SELinux"),
        ((f"{FS}.selinuxContext", "system_u:object_r:public_content_t:s0"), f"{FS}.selinuxContext", "disabled"),
        (("image.source", "images/x.qcow2"), "image.source", "absolute"),
        (("image.boot", "bootloader"), "image.boot", "builtin"),
        (("network.mode", "ovs"), "network.bridge", "Open vSwitch"),
        (("fencing.keyFile", DELETE), "fencing.keyFile", "missing"),
        (("ssh.publicKeyFile", DELETE), "ssh.publicKey", "exactly one"),
        (("network.hostAddress", "10.77.10.5"), "network.hostAddress", "libvirt"),
        (_uri(KVM), "hypervisors[0].uri", "builtin image"),
        (("member", {"count": 3}), "member", "unknown config key"),
        (("hypervisors[0].trunk", ".."), "hypervisors[0].trunk", "not interface names"),
        ((f"{LV}[0].name", "snapshot1"), f"{LV}[0].name", "LVM's own"),
        ((f"{LV}[0].name", "lv_tmeta"), f"{LV}[0].name", "internal volumes"),
        ([("storage.volumeGroups[0].name", "a-" * 31 + "a"), (f"{LV}[0].name", "b-" * 31 + "b")], f"{LV}[0].name", "device-mapper"),
        (("members.names", ["localhost", "m2", "m3"]), "members.names[0]", "localhost"),
        (("storage.servers[0].name", "localhost"), "storage.servers[0].name", "localhost"),
        (("ssh.user", "admin"), "ssh.user", "use root"),
        (("network.bridge", "g2br230"), "network.bridge", "tenant's own bridge"),
        ([("network.mode", "ovs"), ("network.bridge", "g2br230")], "network.bridge", "Open vSwitch"),
    ])
    + _cases("spec", "acme-prod", [
        (("storage.exports[0].protocol", "nbd"), "storage.exports[0].protocol", "current"),
        (("management", "pcsd"), "management", "current"),
        (("cluster.name", "acme-production-1"), "cluster.name", "15"),
        (("storage.servers[0].kind", "external"), "storage.exports[0].server", "cluster node"),
        (("members.cpuShares", 70000), "members.cpuShares", "65535"),
    ])
    + _cases("spec", "globex-prod", [
        (("hypervisors[0].trunk", DELETE), "hypervisors[0].trunk", "VLAN"),
        (("hypervisors[0].trunk", "enp0s31f6long"), "hypervisors[0].trunk", "15"),
        (("cluster.twoNode", True), "cluster.twoNode", "exactly 2"),
        (("storage.volumeGroups[1]", {"name": "vg_other", "exports": ["lun1"], "logicalVolumes": [{"name": "lv"}]}),
         "storage.volumeGroups[1].exports[0]", "another volume group"),
        ((f"{LV}[0].size", "50%FREE"), f"{LV}[0].size", "only the last"),
        ((f"{LV}[1].filesystem.mountPoint", "/home/shared"), f"{LV}[1].filesystem.mountPoint", "used twice"),
    ])
)

SIZES = (
    _cases("sizes", "local", [
        ((f"{LV}[0].size", "0G"), f"{LV}[0].size", "zero"),
        ((f"{LV}[0].size", "0M"), f"{LV}[0].size", "zero"),
        ((f"{LV}[0].size", "000T"), f"{LV}[0].size", "zero"),
        ((f"{LV}[0].size", "5G"), f"{LV}[0].size", "more than the 4092M its exports give"),
        ((f"{LV}[0].size", "4T"), f"{LV}[0].size", "more than"),
        ((f"{LV}[0].size", "101%FREE"), f"{LV}[0].size", "outside 1 to 100"),
        ((f"{LV}[0].size", "150%FREE"), f"{LV}[0].size", "outside 1 to 100"),
        ((f"{LV}[0].size", "0%FREE"), f"{LV}[0].size", "outside 1 to 100"),
        ((f"{LV}[0].size", "50%VG"), f"{LV}[0].size", "%VG sizes are not used here"),
        ((f"{LV}[0].size", "150%VG"), f"{LV}[0].size", "%VG"),
        ((f"{LV}[0].size", "\u0661\u0662G"), f"{LV}[0].size", "500M"),  # Arabic-Indic 12
        ((f"{LV}[0].size", "\uff11\uff12G"), f"{LV}[0].size", "500M"),  # fullwidth 12
        ((f"{LV}[0].size", "\u0969G"), f"{LV}[0].size", "500M"),  # Devanagari 3
        ((f"{LV}[0].size", "99999999999T"), f"{LV}[0].size", "absurdly large"),
        ((f"{LV}[0].size", "16M"), f"{LV}[0].size", "cannot hold the 4 journals"),
        (("storage.exports[0].sizeGib", 0), "storage.exports[0].sizeGib", "1 to 65536"),
        (("storage.exports[0].sizeGib", "\u0664"), "storage.exports[0].sizeGib", "digits 0-9"),
        (("storage.exports[0].sizeGib", 2.5), "storage.exports[0].sizeGib", "fraction"),
        (("network.vlanId", "\u0661\u0660"), "network.vlanId", "digits 0-9"),
        (("members.count", True), "members.count", "not true or false"),
        (("members.memoryMib", "1_024"), "members.memoryMib", "digits 0-9"),
    ])
    + _cases("sizes", "globex-prod", [
        ((f"{LV}[0].size", "500G"), f"{LV}[0].size", "more than the 409592M"),
        ((f"{LV}[0].size", "400G"), f"{LV}[0].size", "less LVM metadata"),  # 2 x 200G, less the PVs' metadata
        ((f"{LV}[0].size", "409592M"), f"{LV}[1].size", "nothing is left for 100%FREE"),
    ])
)

COLLISIONS = (
    _cases("collisions", "local", [
        (("storage.exports[1]", EXPORT1), "storage.exports[1].port", "port 10809 (the NBD default)"),
        (("storage.exports[1]", {**EXPORT1, "port": 10809}), "storage.exports[1].port", "already taken by storage.exports[0]"),
        (("storage.exports[1]", {**EXPORT1, "protocol": "iscsi", "port": 10809}), "storage.exports[1].port", "already taken"),
        ([("storage.exports[0].port", 3260), ("storage.exports[1]", {**EXPORT1, "protocol": "iscsi"})],
         "storage.exports[1].port", "port 3260 (the iSCSI default)"),
        (("storage.exports[0].port", 22), "storage.exports[0].port", "SSH"),
        (("storage.exports", _exports(8)), "storage.exports[7].server", "already carries 7 data disks"),
        (("storage.exports", _exports(12)), "storage.exports[7].server", "another storage server"),
        ([("storage.exports[1]", {**EXPORT1, "port": 10810}),
          ("storage.volumeGroups[1]", {"name": "vg_shared-clone", "exports": ["data2"], "logicalVolumes": [{"name": "lv"}]})],
         "storage.volumeGroups[1].name", "collides with 'vg_shared'"),
        ([("storage.exports[1]", {**EXPORT1, "port": 10810}),
          ("storage.volumeGroups[0].name", "vg+a"),
          ("storage.volumeGroups[1]", {"name": "vg_a", "exports": ["data2"], "logicalVolumes": [{"name": "lv"}]})],
         "storage.volumeGroups[1].name", "lvm-vg_a"),
        ([("storage.exports[1]", {**EXPORT1, "port": 10810}),
          ("storage.volumeGroups[1]", {"name": "vg2", "exports": ["data2"], "logicalVolumes": [
              {"name": "lv", "filesystem": {"fsName": "shared-start", "mountPoint": "/srv/two"}}]})],
         "storage.volumeGroups[1].logicalVolumes[0].filesystem.fsName", "collides with 'shared'"),
        ((f"{LV}[1]", {"name": "lv2", "filesystem": {"fsName": "inner", "mountPoint": "/srv/shared/inner"}}),
         f"{LV}[1].filesystem.mountPoint", "inside /srv/shared"),
    ])
    + _cases("collisions", "acme-prod", [
        (("storage.exports[1]", {"name": "more", "protocol": "gnbd", "server": "gnbd1", "sizeGib": 1, "port": 14568}),
         "storage.exports[1].port", "one gnbd_serv"),
        (("storage.exports[0].port", 22), "storage.exports[0].port", "SSH"),
    ])
    + _cases("collisions", "globex-prod", [
        ([*_external(), ("storage.exports[1]", {"name": "lun2", "protocol": "iscsi", "server": "san1", "device": "/dev/sdb"})],
         "storage.exports[1].device", "already exported as storage.exports[0]"),
        ([*_external(), ("storage.servers[1]", {"name": "san2", "kind": "external", "address": "10.23.0.50"}),
          ("storage.exports[1]", {"name": "lun2", "protocol": "iscsi", "server": "san2", "device": "/dev/sdb"})],
         "storage.exports[1].device", "two volume groups"),
        ([*_external(), ("storage.servers[1]", {"name": "san2", "kind": "external", "address": "10.23.0.50"})],
         "storage.servers[1].address", "used twice"),
    ])
)

REACHABILITY = (
    _cases("reachability", "globex-prod", [
        (_external("10.99.0.5"), "storage.servers[0].address", "routes nothing"),
        (_external("192.168.1.10"), "storage.servers[0].address", "outside network.cidr"),
        (_external("10.23.0.255"), "storage.servers[0].address", "broadcast"),
        (_external("10.23.0.21"), "storage.servers[0].address", "used twice"),
        (_external("10.23.0.1"), "storage.servers[0].address", "used twice"),
        ([*_external(), ("storage.servers[0].hypervisor", "kvm1")], "storage.servers[0].hypervisor", "runs on no hypervisor"),
        (_uri("qemu+tcp://kvm1.example.net/system"), "hypervisors[0].uri", "tcp is unencrypted"),
        (_uri("qemu+libssh2://root@kvm1.example.net/system"), "hypervisors[0].uri", "not implemented"),
        (_uri("qemu+ext:///system?command=/bin/sh"), "hypervisors[0].uri", "not implemented"),
        (_uri("qemu+ssh://root:hunter2@kvm1.example.net/system"), "hypervisors[0].uri", "password", {"hidden": ("hunter2",)}),
        (_uri("qemu+ssh://root:@kvm1.example.net/system"), "hypervisors[0].uri", "password"),
        (_uri(KVM + "?no_verify=1"), "hypervisors[0].uri", "no_verify"),
        (_uri(KVM + "?no_verify=0"), "hypervisors[0].uri", "even no_verify=0"),
        (_uri(KVM + "?no_verify"), "hypervisors[0].uri", "no_verify"),
        (_uri(KVM + "?known_hosts_verify=ignore"), "hypervisors[0].uri", "ignore turns the host key check off"),
        (_uri(KVM + "?known_hosts_verify=auto"), "hypervisors[0].uri", "known_hosts_verify"),
        (_uri(KVM + "?sshauth=ssh-password"), "hypervisors[0].uri", "ssh-password"),
        (_uri(KVM + "?sshauth=gssapi"), "hypervisors[0].uri", "agent, privkey"),
        (_uri(KVM + "?name=xen:///system"), "hypervisors[0].uri", "another driver"),
        (_uri(KVM + "?command=/bin/sh"), "hypervisors[0].uri", "ignored by the libvirt provider"),
        (_uri(KVM + "?keyfile=/root/id;reboot"), "hypervisors[0].uri", "characters"),
        (_uri(KVM + "?keyfile=~bob/id"), "hypervisors[0].uri", "~USER"),
        (_uri("qemu+ssh://root@kvm_1.example.net/system"), "hypervisors[0].uri", "not a host name"),
        (_uri("qemu+ssh://root@-kvm1-/system"), "hypervisors[0].uri", "not a host name"),
        (_uri("qemu+ssh://root@999.1.1.1/system"), "hypervisors[0].uri", "IPv4"),
        (_uri("qemu+ssh:///system"), "hypervisors[0].uri", "needs a host"),
        (_uri("qemu+ssh://root@kvm1.example.net:2222/system"), "hypervisors[0].uri", "port 22"),
        (_uri("qemu+ssh://root@kvm1.example.net:x/system"), "hypervisors[0].uri", "cannot be read"),
        (_uri("qemu+ssh://Root@kvm1.example.net/system"), "hypervisors[0].uri", "login name"),
        (_uri("qemu+ssh://root@kvm1.example.net/session"), "hypervisors[0].uri", "'/system'"),
        (_uri("qemu+unix://kvm1.example.net/system"), "hypervisors[0].uri", "this machine's socket"),
        (_uri("test:///default"), "hypervisors[0].uri", "qemu, xen"),
        (_uri("qemu+ssh://root@kvm1.example.net/system#x"), "hypervisors[0].uri", "fragment"),
        (_uri("qemu+ssh://root@kvm1 example.net/system"), "hypervisors[0].uri", "spaces"),
        (("network.cidr", "127.0.0.0/24"), "network.cidr", "loopback"),
        (("network.cidr", "224.1.0.0/24"), "network.cidr", "multicast"),
        (("network.cidr", "255.255.255.0/24"), "network.cidr", "reserved"),
        (("network.cidr", "0.0.0.0/24"), "network.cidr", "this network"),
    ])
    + _cases("reachability", "globex-prod", [
        (_uri("qemu+ssh://deploy@kvm1.example.net/system"), "hypervisors[0].uri", "must be root"),
        (("hypervisors[1]", {"name": "kvm1b", "uri": "qemu+ssh://root@KVM1.example.net/system", "trunk": "bond0"}),
         "hypervisors[1].uri", "listed twice"),
    ])
    + _cases("reachability", "local", [
        ([("hypervisors[1]", {"name": "other", "uri": "qemu+ssh://root@kvm2.example.net/system", "domainType": "qemu"}),
          ("storage.servers[0].hypervisor", "other")], "storage.servers[0].hypervisor", "network on one host"),
        (("hypervisors[1]", {"name": "again", "uri": "qemu:///system", "domainType": "qemu"}), "hypervisors[1].uri", "this machine"),
        ([("storage.servers[1]", {"name": "san1", "kind": "external", "address": "10.77.10.50"}),
          ("storage.exports[1]", {"name": "ext", "protocol": "nbd", "server": "san1", "device": "/dev/sdb"})],
         "storage.servers[1].kind", "never reach an external server"),
        (("storage.servers[1]", {"name": "san1", "kind": "external"}), "storage.servers[1].address", "needs its address"),
    ])
    + _cases("reachability", "acme-prod", [
        (_uri("xen+ssh://root:s3cr3tPass@dom0.example.net/"), "hypervisors[0].uri", "password", {"hidden": ("s3cr3tPass",)}),
        (_uri("xen+tcp://dom0.example.net/"), "hypervisors[0].uri", "tcp"),
    ])
)

FILESYSTEMS = (
    _cases("fs", "local", [
        ((f"{FS}.mountOptions", ["lockproto=lock_nolock"]), f"{FS}.mountOptions[0]", "lock_nolock"),
        ((f"{FS}.mountOptions", ["noatime", "locktable=other:fs"]), f"{FS}.mountOptions[1]", "lock table"),
        ((f"{FS}.mountOptions", ["hostdata=jid=0"]), f"{FS}.mountOptions[0]", "journal id"),
        ((f"{FS}.mountOptions", ["localflocks"]), f"{FS}.mountOptions[0]", "local to each member"),
        ((f"{FS}.mountOptions", ["localcaching"]), f"{FS}.mountOptions[0]", "lock_nolock"),
        ((f"{FS}.mountOptions", ["ignore_local_fs"]), f"{FS}.mountOptions[0]", "lock_nolock"),
        ((f"{FS}.mountOptions", ["spectator"]), f"{FS}.mountOptions[0]", "without a journal"),
        ((f"{FS}.mountOptions", ["norecovery"]), f"{FS}.mountOptions[0]", "spectator"),
        ((f"{FS}.mountOptions", ["meta"]), f"{FS}.mountOptions[0]", "metadata"),
        ((f"{FS}.mountOptions", ["nobarrier"]), f"{FS}.mountOptions[0]", "flushes"),
        ((f"{FS}.mountOptions", ["context=system_u:object_r:x_t:s0"]), f"{FS}.mountOptions[0]", "selinuxContext"),
        ((f"{FS}.mountOptions", ["frobnicate"]), f"{FS}.mountOptions[0]", "kernel knows"),
        ((f"{FS}.mountOptions", ["quota=maybe"]), f"{FS}.mountOptions[0]", "quota= takes off, account, on"),
        ((f"{FS}.mountOptions", ["commit=0"]), f"{FS}.mountOptions[0]", "1 to"),
        ((f"{FS}.mountOptions", ["statfs_percent=101"]), f"{FS}.mountOptions[0]", "0 to 100"),
        ((f"{FS}.mountOptions", ["acl="]), f"{FS}.mountOptions[0]", "without a value"),
        ((f"{FS}.mountOptions", ["noatime", "noatime"]), f"{FS}.mountOptions[1]", "repeats"),
        ((f"{FS}.mountOptions", ["acl", "noacl"]), f"{FS}.mountOptions[1]", "contradicts"),
        ((f"{FS}.mountOptions", ["data=ordered", "data=writeback"]), f"{FS}.mountOptions[1]", "contradicts"),
        ((f"{FS}.mountOptions", ["noatime,lockproto=lock_nolock"]), f"{FS}.mountOptions[0]", "one mount option"),
        ((f"{FS}.mountPoint", "/"), f"{FS}.mountPoint", "system's own /"),
        ((f"{FS}.mountPoint", "/usr"), f"{FS}.mountPoint", "in /usr"),
        ((f"{FS}.mountPoint", "/etc/cluster"), f"{FS}.mountPoint", "in /etc"),
        ((f"{FS}.mountPoint", "/var"), f"{FS}.mountPoint", "system's own /var"),
        ((f"{FS}.mountPoint", "/boot"), f"{FS}.mountPoint", "in /boot"),
        ((f"{FS}.mountPoint", "/var/lib/pacemaker/x"), f"{FS}.mountPoint", "in /var/lib/pacemaker"),
        ((f"{FS}.mountPoint", "/tmp/shared"), f"{FS}.mountPoint", "in /tmp"),
        ((f"{FS}.mountPoint", "/srv/" + "a" * 200), f"{FS}.mountPoint", "longer than 128"),
        ((f"{FS}.mountPoint", "/srv/../etc"), f"{FS}.mountPoint", "plainly"),
        ((f"{FS}.mountPoint", "/srv//shared"), f"{FS}.mountPoint", "plainly"),
        ((f"{FS}.mountPoint", "/srv/shared/"), f"{FS}.mountPoint", "ends with '/'"),
    ])
    + _cases("fs", "acme-prod", [
        ((f"{FS}.mountOptions", ["noauto"]), f"{FS}.mountOptions[0]", "init script"),
        ((f"{FS}.mountOptions", ["discard"]), f"{FS}.mountOptions[0]", "RHEL/CentOS 5"),
        ((f"{FS}.mountOptions", ["errors=panic"]), f"{FS}.mountOptions[0]", "RHEL/CentOS 5"),
    ])
)

PATHS = (
    _cases("paths", "acme-prod", [
        (("image.kernel", "/boot/vmlinuz"), "image.kernel", "not used"),
        (("image.source", "/"), "image.source", "directory"),
    ])
    + _cases("paths", "globex-prod", [
        (("image.kernel", "/"), "image.kernel", "root directory"),
        (("image.kernel", "/var/lib/libvirt/images/k;reboot"), "image.kernel", "character ';'"),
        (("image.initrd", "/boot/initrd $(id)"), "image.initrd", "space"),
        (("image.kernel", "relative/vmlinuz"), "image.kernel", "absolute"),
        (("image.kernel", "/boot/../vmlinuz"), "image.kernel", "plainly"),
        (("image.source", "/images/a b.qcow2"), "image.source", "space"),
        (("image.source", "/images/x`id`.qcow2"), "image.source", "character '`'"),
        (("image.source", "/images/\u00efmage.qcow2"), "image.source", "non-ASCII"),
        (("image.source", "http://example.net/x.qcow2"), "image.source", "character ':'"),
        (("image.source", "~/images/x.qcow2"), "image.source", "absolute"),
        ([*_external()[:3], ("storage.exports[0].device", "/dev/sdb;rm")], "storage.exports[0].device", "character ';'"),
    ])
    + _cases("paths", "local", [
        (("fencing.keyFile", "keys/fence|key"), "fencing.keyFile", "character '|'"),
        (("cluster.authKeyFile", "~root/corosync.key"), "cluster.authKeyFile", "~USER"),
        (("ssh.privateKeyFile", "id\nrm -rf /"), "ssh.privateKeyFile", "control character"),
        (("ssh.publicKeyFile", ""), "ssh.publicKeyFile", "empty"),
        (("fencing.keyFile", "keys/" + "k" * 300), "fencing.keyFile", "longer than 255"),
        (("fencing.keyFile", "keys/"), "fencing.keyFile", "ends with '/'"),
    ])
)

PUBLIC = "ssh-ed25519 AAAATEST test\n".encode()
SECRET_CASES = (
    _cases("secrets", "globex-prod", [
        (("ssh.publicKey", SSH_KEY), "ssh.publicKey", "holds a private key"),
        (("ssh.publicKey", "not a key at all"), "ssh.publicKey", "not an OpenSSH public key line"),
        (("ssh.publicKey", "ssh-ed25519 AAAA one\nssh-ed25519 AAAA two"), "ssh.publicKey", "one line"),
        (("ssh.publicKey", "ssh-ed25519 AAAA " + "c" * 1100), "ssh.publicKey", "kernel command line"),
        ([("ssh.publicKey", DELETE), ("ssh.publicKeyFile", "keys/id.pub")], "ssh.publicKeyFile", "holds a private key",
         {"files": {"keys/id.pub": SSH_KEY.encode()}}),
        ([("ssh.publicKey", DELETE), ("ssh.publicKeyFile", "keys/id.pub")], "ssh.publicKeyFile", "is not text",
         {"files": {"keys/id.pub": b"\xff\xfe\x00binary"}}),
        (None, "sshPrivateKey", "does not hold an SSH private key", {"secrets": {"sshPrivateKey": "hello"}}),
        (None, "sshPrivateKey", "holds a public key", {"secrets": {"sshPrivateKey": PUBLIC.decode()}}),
        (None, "sshPrivateKey", "passphrase", {"secrets": {"sshPrivateKey": ENCRYPTED_KEY}, "hidden": ("TEST-ONLY-ENCRYPTED",)}),
        (None, "fenceKey", "is not base64", {"secrets": {"fenceKey": "%%% not base64 %%%"}, "hidden": ("not base64 %%%",)}),
        (None, "clusterAuthKey", "128 to 4096", {"secrets": {"clusterAuthKey": base64.b64encode(b"0123456789").decode()}}),
        (None, "fenceKey", "plain text", {"plain": ("fenceKey",)}),
        (None, "sshPrivateKey", "plain text", {"plain": ("sshPrivateKey",)}),
        (None, "ssh.privateKeyFile", "missing", {"secrets": {"sshPrivateKey": None}}),
    ])
    + _cases("secrets", "local", [
        (None, "ssh.privateKeyFile", "is not text", {"files": {f"{LOCAL_KEYS}/id_ed25519": b"\x00\x01\xff\xfe"}}),
        (None, "ssh.privateKeyFile", "is empty", {"files": {f"{LOCAL_KEYS}/id_ed25519": b""}}),
        (None, "ssh.privateKeyFile", "holds a public key", {"files": {f"{LOCAL_KEYS}/id_ed25519": PUBLIC}}),
        (("ssh.privateKeyFile", "keys/missing"), "ssh.privateKeyFile", "No such file"),
        (("ssh.privateKeyFile", LOCAL_KEYS), "ssh.privateKeyFile", "Is a directory"),
        (None, "fencing.keyFile", "is empty", {"files": {f"{LOCAL_KEYS}/fence_xvm.key": b""}}),
        (None, "cluster.authKeyFile", "128 to 4096", {"files": {f"{LOCAL_KEYS}/corosync.key": b"short"}}),
        (None, "cluster.authKeyFile", "128 to 4096", {"files": {f"{LOCAL_KEYS}/corosync.key": b"k" * 5000}}),
        (None, "ssh.publicKeyFile", "holds a private key", {"files": {f"{LOCAL_KEYS}/id_ed25519.pub": SSH_KEY.encode()}}),
        (("fencing.keyFile", SSH_KEY), "fencing.keyFile", "not shown"),
        (("fencing.keyFile", AUTH_KEY), "fencing.keyFile", "character '='"),
        (("cluster.authKeyFile", AUTH_KEY.rstrip("=")), "cluster.authKeyFile", "not shown"),
        (("cluster.authKeyFile", AUTH_KEY[:60].replace("/", "x").replace("+", "y")), "cluster.authKeyFile", "No such file"),
        (None, "fencing.keyFile", "keep one", {"secrets": {"fenceKey": SECRETS["fenceKey"]}}),
    ])
)

FENCING = (
    _cases("fencing", "local", [(("fencing.method", "fence_virsh"), "fencing.method", "end to end")])
    + _cases("fencing", "globex-prod", [(("fencing.method", "fence_virsh"), "fencing.method", "nothing installs its SSH key")])
    + _cases("fencing", "acme-prod", [
        ([("hypervisors[1]", {"name": "dom1", "uri": "xen+ssh://root@dom1.example.net/", "domainType": "xen", "trunk": "eth1"}),
          ("storage.servers[0].hypervisor", "dom1")], "storage.servers[0].hypervisor", "fences only the domains there"),
        (("fencing.multicastAddress", "224.0.0.18"), "fencing.multicastAddress", "routing protocols"),
        (("fencing.method", "fence_virsh"), "fencing.method", "use fence_xvm"),
        ([("fencing.method", "fence_virsh"), ("network.mode", "isolated")], "fencing.method", "end to end"),
    ])
)

_SIXTEEN = [f"web{k}" for k in range(1, 17)]
CMAN = _cases("cman", "acme-prod", [
    ([("members.names", ["web1", "web2"]), ("members.addresses", ["192.168.120.21", "192.168.120.22"]), ("cluster.twoNode", True)],
     "cluster.twoNode", "GNBD server's vote"),
    (("cluster.twoNode", True), "cluster.twoNode", "remove twoNode"),
    ([("members.names", _SIXTEEN), ("members.addresses", [f"192.168.120.{20 + k}" for k in range(1, 17)])],
     "members", "17 cman nodes"),
    (("cluster.name", "acme-production1"), "cluster.name", "15 characters"),
])

CLASSES = {
    "sizes": SIZES,
    "collisions": COLLISIONS,
    "reachability": REACHABILITY,
    "fs": FILESYSTEMS,
    "paths": PATHS,
    "secrets": SECRET_CASES,
    "fencing": FENCING,
    "cman": CMAN,
}
ALL = [*SPEC, *(c for cases in CLASSES.values() for c in cases)]
