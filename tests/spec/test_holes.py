"""Issue 11's classes of holes, one test each over its bad cases (tests/bad_cases.py), and
beside it what the class allows on purpose. Every input that is refused names its key
path and quotes no key material; every input allowed here builds a topology."""

from __future__ import annotations

import base64

import pytest

from bad_cases import CLASSES, DELETE, FS, KVM, LV, PUBLIC, Case, _external, assert_refused as refused, load
from conftest import SSH_KEY
from spec import SpecError, build
from spec.gfs2 import option_problem
from spec.keys import private_key_problem, public_key_problem
from spec.libvirt_uri import problems


def allowed(stack: str, *changes, **kw):
    """The topology of STACK with CHANGES, which must load."""
    topo = build(load(Case("allowed", stack, changes, "", "", **kw)).spec)
    assert topo.members
    return topo


def cases_of(cls: str) -> list[Case]:
    return CLASSES[cls]


def test_every_class_has_at_least_three_distinct_inputs():
    for cls, cases in CLASSES.items():
        assert len({c.id for c in cases}) >= 3, cls


# --- sizes ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases_of("sizes"), ids=[c.id for c in cases_of("sizes")])
def test_sizes(case):
    refused(case)


@pytest.mark.parametrize(
    "stack,size",
    [("local", "4092M"), ("local", "100%FREE"), ("local", "1%FREE"), ("local", "64M"), ("globex-prod", "409000M")],
)
def test_sizes_that_fit_are_allowed(stack, size):
    # 4092M is all a 4 GiB export gives (one 4 MiB extent goes to the PV's metadata).
    allowed(stack, (f"{LV}[0].size", size))


def test_a_size_over_a_device_of_unknown_size_is_left_to_lvcreate():
    allowed("globex-prod", *_external(), (f"{LV}[0].size", "10T"))


def test_whole_numbers_may_come_as_ascii_digit_strings():
    # `pulumi config set --path members.count 4` stores the text "4".
    assert len(allowed("globex-prod", ("members.count", "4"), ("network.vlanId", " 230 ")).members) == 4


# --- collisions -----------------------------------------------------------------------


@pytest.mark.parametrize("case", cases_of("collisions"), ids=[c.id for c in cases_of("collisions")])
def test_collisions(case):
    refused(case)


def test_iscsi_exports_share_one_portal_and_gnbd_exports_one_gnbd_serv():
    topo = allowed("globex-prod", ("storage.exports[1].server", "iscsi1"))
    assert {e.port for e in topo.exports} == {3260}
    more = {"name": "more", "protocol": "gnbd", "server": "gnbd1", "sizeGib": 1}
    assert {e.port for e in allowed("acme-prod", ("storage.exports[1]", more)).exports} == {14567}


def test_seven_data_disks_on_one_server_and_nbd_exports_on_their_own_ports():
    exports = [{"name": "data" if k == 0 else f"d{k}", "protocol": "nbd", "server": "s1", "sizeGib": 1, "port": 10809 + k} for k in range(7)]
    topo = allowed("local", ("storage.exports", exports), (f"{LV}[0].size", "512M"))
    assert [d.target for d in topo.guest("s1").data_disks] == ["vdb", "vdc", "vdd", "vde", "vdf", "vdg", "vdh"]


def test_one_device_path_on_two_external_servers_is_two_devices():
    topo = allowed(
        "globex-prod",
        *_external(),
        ("storage.servers[1]", {"name": "san2", "kind": "external", "address": "10.23.0.51"}),
        ("storage.exports[1]", {"name": "lun2", "protocol": "iscsi", "server": "san2", "device": "/dev/sdb"}),
    )
    assert [e.device for e in topo.exports] == ["/dev/sdb", "/dev/sdb"]


def test_names_that_only_share_a_prefix_do_not_collide():
    extra = {"name": "data2", "protocol": "nbd", "server": "s1", "sizeGib": 1, "port": 10810}
    vg = {"name": "vg_shared-old", "exports": ["data2"], "logicalVolumes": [{"name": "lv"}]}
    allowed("local", ("storage.exports[1]", extra), ("storage.volumeGroups[1]", vg))
    # /srv/shared and /srv/shared2 are not nested.
    allowed("local", (f"{LV}[0].size", "1G"), (f"{LV}[1]", {"name": "lv2", "filesystem": {"fsName": "two", "mountPoint": "/srv/shared2"}}))


# --- reachability ---------------------------------------------------------------------


@pytest.mark.parametrize("case", cases_of("reachability"), ids=[c.id for c in cases_of("reachability")])
def test_reachability(case):
    refused(case)


@pytest.mark.parametrize(
    "uri",
    [
        KVM,
        "qemu+ssh://kvm1/system",
        "qemu+ssh://root@10.0.0.5/system",
        "qemu+ssh://root@[fd00::5]/system",
        "qemu+ssh://root@kvm1.example.net:22/system",
        "qemu+tls://kvm1.example.net/system",
        "qemu://kvm1.example.net/system",
        "qemu+tls://kvm1.example.net:16514/system?pkipath=/etc/pki/libvirt",
        KVM + "?keyfile=~/.ssh/id_ed25519&knownhosts=/root/.ssh/known_hosts",
        KVM + "?sshauth=agent,privkey",
        KVM + "?known_hosts_verify=normal",
        KVM + "?socket=/var/run/libvirt/libvirt-sock",
        "qemu:///system",
        "qemu+unix:///system",
    ],
)
def test_uris_the_provider_really_reaches_are_allowed(uri):
    # tls (the default transport with a host) verifies the host's certificate.
    assert problems(uri) == []


@pytest.mark.parametrize("uri", ["xen:///", "xen:///system", "xen+ssh://root@dom0.example.net/", "xen:"])
def test_xen_uris_are_allowed(uri):
    assert problems(uri) == []


def test_an_external_server_on_the_tenant_network_is_allowed():
    topo = allowed("globex-prod", *_external("10.23.0.50"))
    assert str(topo.exports[0].server_address) == "10.23.0.50" and not topo.exports[0].server_is_guest


# --- file-system semantics ------------------------------------------------------------


@pytest.mark.parametrize("case", cases_of("fs"), ids=[c.id for c in cases_of("fs")])
def test_filesystem_semantics(case):
    refused(case)


CURRENT_OPTIONS = [
    "noatime", "relatime", "nodiratime", "lazytime", "acl", "noacl", "quota=on", "quota=account", "noquota",
    "data=ordered", "data=writeback", "discard", "commit=30", "errors=panic", "errors=withdraw", "statfs_quantum=30",
    "statfs_percent=10", "quota_quantum=60", "rgrplvb", "loccookie", "nodev", "nosuid", "noexec", "_netdev", "ro",
    "barrier", "suiddir", "debug",
]


@pytest.mark.parametrize("option", CURRENT_OPTIONS)
def test_mount_options_that_keep_cluster_locking_are_allowed(option):
    assert option_problem(option, "current") is None


@pytest.mark.parametrize("option", ["noatime", "acl", "quota=off", "data=ordered", "nosuiddir", "_netdev"])
def test_mount_options_of_rhel5s_gfs2_are_allowed_in_legacy(option):
    assert option_problem(option, "legacy") is None


def test_allowed_options_reach_the_mount():
    topo = allowed("local", (f"{FS}.mountOptions", ["noatime", "acl", "quota=on", "commit=30"]))
    assert topo.filesystems[0].mount_options == ("noatime", "acl", "quota=on", "commit=30")


@pytest.mark.parametrize("mount_point", ["/srv", "/srv/shared", "/home", "/home/shared", "/mnt/gfs2", "/var/www/html", "/data", "/var/lib/mysql", "/opt/app/data"])
def test_data_directories_are_allowed_as_mount_points(mount_point):
    allowed("local", (f"{FS}.mountPoint", mount_point))


# --- paths ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases_of("paths"), ids=[c.id for c in cases_of("paths")])
def test_paths(case):
    refused(case)


def test_key_paths_may_be_relative_absolute_or_in_home():
    files = {"keys/fence.key": b"k" * 64, "../outside/corosync.key": b"a" * 256}
    allowed(
        "local",
        ("fencing.keyFile", "keys/fence.key"),
        ("cluster.authKeyFile", "../outside/corosync.key"),
        files=files,
    )


def test_image_paths_may_hold_plus_and_at():
    allowed("globex-prod", ("image.source", "/var/lib/images/rhel9+gfs2@v2.qcow2"))


# --- secrets --------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases_of("secrets"), ids=[c.id for c in cases_of("secrets")])
def test_secrets(case):
    refused(case)


def _openssh_key(cipher: bytes) -> str:
    blob = b"openssh-key-v1\0" + len(cipher).to_bytes(4, "big") + cipher + b"\0" * 32
    body = base64.b64encode(blob).decode()
    return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n"


def test_an_openssh_key_with_a_passphrase_is_refused_and_one_without_allowed():
    assert "passphrase" in private_key_problem(_openssh_key(b"aes256-ctr").encode())
    assert private_key_problem(_openssh_key(b"none").encode()) is None
    case = Case("secrets", "globex-prod", (), "sshPrivateKey", "passphrase", secrets={"sshPrivateKey": _openssh_key(b"aes256-ctr")})
    refused(case)


@pytest.mark.parametrize(
    "line",
    [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ9rEXAMPLE",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== user@host",
        "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY=",
        "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t comment with spaces",
    ],
)
def test_public_key_lines_are_allowed(line):
    assert public_key_problem(line) is None


def test_a_public_key_file_with_its_newline_is_allowed():
    topo_input = load(Case("allowed", "local", (), "", ""))
    assert topo_input.ssh_public_key == PUBLIC.decode().strip()


@pytest.mark.parametrize("path", ["tenant", "image.source", "fencing.keyFile", "ssh.publicKey", f"{FS}.mountPoint", "hypervisors[0].uri", f"{FS}.lockTable"])
def test_a_private_key_pasted_into_any_text_field_is_never_quoted(path):
    changes = [(path, SSH_KEY)] + ([("ssh.publicKeyFile", DELETE)] if path == "ssh.publicKey" else [])
    with pytest.raises(SpecError) as e:
        load(Case("secrets", "local", tuple(changes), path, ""))
    assert path in e.value.paths
    assert "TEST-ONLY-SSH-KEY-MATERIAL" not in str(e.value) and "BEGIN OPENSSH" not in str(e.value)


# --- fencing and cman -----------------------------------------------------------------


@pytest.mark.parametrize("case", cases_of("fencing"), ids=[c.id for c in cases_of("fencing")])
def test_fence_virsh_is_refused_until_its_key_is_installed(case):
    refused(case)


def test_fence_xvm_and_a_lab_without_fencing_are_allowed():
    assert allowed("local").fencing.method == "fence_xvm"
    assert allowed("local", ("fencing", {"method": "none", "labWithoutFencing": True})).fencing.method == "none"


@pytest.mark.parametrize("case", cases_of("cman"), ids=[c.id for c in cases_of("cman")])
def test_cman_limits(case):
    refused(case)


def test_a_legacy_cluster_of_two_members_keeps_its_majority_without_two_node():
    topo = allowed("acme-prod", ("members.names", ["web1", "web2"]), ("members.addresses", ["192.168.120.21", "192.168.120.22"]))
    assert len(topo.members) == 2
