"""The words every part of the project shares: project names, the secret config keys, and
the closed sets of values a stack may choose from. Defined once here; the model, the
rules, the program, the platform, the policy pack and the tests import them.
No Pulumi import.
"""

from __future__ import annotations

from typing import Literal

# Pulumi projects: the tenant program (Pulumi.yaml) and the platform (platform/Pulumi.yaml).
PROJECT = "gfs2-cluster"
PLATFORM_PROJECT = "gfs2-platform"

# Config keys that hold secrets, each with the spec field that may name a file instead.
SECRET_KEYS: dict[str, str] = {
    "sshPrivateKey": "ssh.privateKeyFile",
    "fenceKey": "fencing.keyFile",
    "clusterAuthKey": "cluster.authKeyFile",
}
SECRET_KEY_NAMES = frozenset(SECRET_KEYS)

Generation = Literal["legacy", "current"]
Protocol = Literal["gnbd", "nbd", "iscsi"]
FenceMethod = Literal["fence_xvm", "fence_virsh", "none"]
DomainType = Literal["qemu", "kvm", "xen"]
OsFamily = Literal["debian12", "rhel9", "centos5"]
NetworkMode = Literal["isolated", "vlan", "ovs"]
SelinuxMode = Literal["enforcing", "permissive", "disabled"]
Management = Literal["none", "pcsd", "luci"]
ServerKind = Literal["guest", "external"]
BootMode = Literal["direct", "bootloader"]
ImageFormat = Literal["qcow2", "raw"]
GuestRole = Literal["member", "server"]
