"""What a GFS2 file system may be mounted with, and where.

Mount options are checked against the kernel's GFS2 parameters (fs/gfs2/super.c,
ops_fstype.c since 5.x: gfs2_fs_parameters) and the generic flags mount(8) turns into
MS_* flags. Refused with the reason: everything that replaces the lock module or the
member's identity (lockproto, locktable, hostdata), the lock_nolock-only switches
(localcaching, ignore_local_fs), what takes a member out of journal recovery
(spectator, norecovery), what makes locks member-local (localflocks), what mounts
something else (meta) or rewrites the format (upgrade), what drops cache flushes to
the shared disk (nobarrier), SELinux contexts (filesystem.selinuxContext sets the one
context=), and in fstab (legacy) noauto. Anything unknown is refused too: the kernel
would refuse the mount ("Unknown parameter"), and pacemaker would fence over it.
Allowed on purpose: the generic atime, exec, suid, dev and sync flags, ro, acl,
quotas, data=, and on the current kernels discard, commit=, errors=, statfs_*,
quota_quantum=, rgrplvb and loccookie (every member mounts with the same options, which
is what rgrplvb and loccookie need). No Pulumi import.
"""

from __future__ import annotations

import re
from typing import Optional

REFUSED = {
    "lockproto": "chooses the lock module: lock_nolock lets every member write without cluster locks and corrupts the "
    "file system; the cluster's lock_dlm is written by mkfs",
    "locktable": "replaces the lock table mkfs wrote (CLUSTER:FS), so a member could join another cluster's "
    "lockspace; filesystem.lockTable is the checked way to name it",
    "hostdata": "hands the lock module a journal id and node identity (jid=, id=, first=) of its own; the cluster "
    "assigns them",
    "spectator": "mounts without a journal: the member takes no part in recovering a failed member's journal",
    "norecovery": "is spectator by another name: no journal, no part in recovery",
    "localflocks": "makes flock() and POSIX locks local to each member: programs on two members no longer exclude "
    "each other",
    "localcaching": "is a lock_nolock-only mode kept from GFS: it caches as if no other member wrote",
    "ignore_local_fs": "is a lock_nolock-only switch kept from GFS",
    "meta": "mounts GFS2's metadata file system instead of the data",
    "upgrade": "rewrites the on-disk format; mkfs here writes the current one",
    "nobarrier": "stops cache flushes to the shared disk: writes the members believed done are lost when a server "
    "or the hypervisor stops",
    "context": "is set from filesystem.selinuxContext; give it there",
    "fscontext": "is not used here: filesystem.selinuxContext gives the whole file system one context",
    "defcontext": "is not used here: filesystem.selinuxContext gives the whole file system one context",
    "rootcontext": "is not used here: filesystem.selinuxContext gives the whole file system one context",
}
# Only legacy clusters mount from /etc/fstab (the gfs2 init script mounts every entry).
REFUSED_IN_FSTAB = {"noauto": "keeps the gfs2 init script from mounting it at boot, after a member is fenced too"}

GENERIC_FLAGS = {
    "defaults", "rw", "ro", "atime", "noatime", "relatime", "strictatime", "diratime", "nodiratime",
    "lazytime", "nolazytime", "suid", "nosuid", "dev", "nodev", "exec", "noexec", "sync", "async", "dirsync",
    "_netdev",
}
# RHEL/CentOS 5's GFS2 (kernel 2.6.18) knows these; later kernels know them too.
GFS2_FLAGS = {"acl", "noacl", "suiddir", "nosuiddir", "debug", "nodebug"}
GFS2_CHOICES = {"data": ("ordered", "writeback"), "quota": ("off", "account", "on")}
# Added since: the current generation's kernels (Debian 12's 6.1, RHEL 9's 5.14) have them.
CURRENT_FLAGS = {"discard", "nodiscard", "barrier", "rgrplvb", "norgrplvb", "loccookie", "noloccookie", "quota", "noquota"}
CURRENT_CHOICES = {"errors": ("withdraw", "panic")}
# name: (smallest, largest) of its number (the kernel reads a signed 32-bit int).
CURRENT_NUMBERS = {"commit": (1, 2**31 - 1), "statfs_quantum": (0, 2**31 - 1), "statfs_percent": (0, 100), "quota_quantum": (1, 2**31 - 1)}

# Options that say opposite things: at most one of each group.
EXCLUSIVE = [
    {"ro", "rw"}, {"atime", "noatime", "relatime", "strictatime"}, {"diratime", "nodiratime"}, {"lazytime", "nolazytime"},
    {"suid", "nosuid"}, {"dev", "nodev"}, {"exec", "noexec"}, {"sync", "async"}, {"acl", "noacl"},
    {"suiddir", "nosuiddir"}, {"debug", "nodebug"}, {"discard", "nodiscard"}, {"barrier", "nobarrier"},
    {"rgrplvb", "norgrplvb"}, {"loccookie", "noloccookie"}, {"quota", "noquota", "quota="},
]


def _kind(option: str) -> str:
    """NAME= for an option with a value (data=..., commit=...), else the flag itself."""
    name, has_value, _ = option.partition("=")
    return name + "=" if has_value else option


def option_problem(option: str, generation: str) -> Optional[str]:
    """Why OPTION cannot be a GFS2 mount option of this generation's members, or None."""
    name, has_value, value = option.partition("=")
    if name in REFUSED:
        return f"{name} {REFUSED[name]}"
    if generation == "legacy" and name in REFUSED_IN_FSTAB:
        return f"{name} {REFUSED_IN_FSTAB[name]}"
    flags = GENERIC_FLAGS | GFS2_FLAGS | (CURRENT_FLAGS if generation == "current" else set())
    choices = {**GFS2_CHOICES, **(CURRENT_CHOICES if generation == "current" else {})}
    numbers = CURRENT_NUMBERS if generation == "current" else {}
    if not has_value and name in flags:
        return None
    if has_value and name in choices:
        if value in choices[name]:
            return None
        return f"{name}= takes {', '.join(choices[name])}"
    if has_value and name in numbers:
        low, high = numbers[name]
        if re.fullmatch(r"[0-9]{1,10}", value) and low <= int(value) <= high:
            return None
        return f"{name}= takes a whole number from {low} to {high}"
    if name in flags or name in choices or name in numbers:
        return f"{name} is written {'without a value' if name in flags else name + '=VALUE'}"
    known = CURRENT_FLAGS | set(CURRENT_CHOICES) | set(CURRENT_NUMBERS)
    if generation == "legacy" and name in known:
        return f"{name}{has_value} is not known to RHEL/CentOS 5's GFS2 (kernel 2.6.18)"
    return (
        "is not a GFS2 mount option the members' kernel knows (the mount would fail); allowed: "
        + ", ".join(sorted(flags | {f"{n}=" for n in (*choices, *numbers)}))
    )


def conflicts(options: list[str]) -> list[tuple[int, str]]:
    """(index, problem) for an option that repeats or contradicts an earlier one."""
    out = []
    seen: dict[str, int] = {}
    for k, option in enumerate(options):
        key = _kind(option)
        group = next((g for g in EXCLUSIVE if key in g), {key})
        earlier = next((seen[g] for g in group if g in seen), None)
        if earlier is not None:
            same = options[earlier] == option
            out.append((k, f"{'repeats' if same else 'contradicts'} mountOptions[{earlier}] ({options[earlier]}); keep one"))
        seen[key] = k
    return out


# Directories the system itself lives in: never a mount point, and (the trees) nothing
# below them either. Data places (/srv, /home, /mnt, /media, /var/www, ...) are fine.
SYSTEM_DIRS = {"/", "/opt", "/root", "/var", "/var/lib", "/usr/local"}
SYSTEM_TREES = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run", "/sbin", "/sys",
    "/tmp", "/usr", "/var/cache", "/var/lib/corosync", "/var/lib/dlm", "/var/lib/iscsi", "/var/lib/pacemaker",
    "/var/lib/pcsd", "/var/lib/dpkg", "/var/lib/rpm", "/var/lib/systemd", "/var/lock", "/var/log", "/var/run",
    "/var/spool", "/var/tmp",
)
MOUNT_POINT_MAX = 128


def mount_point_problem(path: str) -> Optional[str]:
    """Why PATH (a normalised absolute path) cannot be where GFS2 is mounted, or None."""
    if len(path) > MOUNT_POINT_MAX:
        return f"is longer than {MOUNT_POINT_MAX} characters; choose a short directory such as /srv/shared"
    tree = next((t for t in SYSTEM_TREES if path == t or path.startswith(t + "/")), None)
    if tree is not None:
        return f"is in {tree}, which the system itself uses (mounting there hides it); use a data directory such as /srv/NAME"
    if path in SYSTEM_DIRS:
        return f"would hide the system's own {path}; use a data directory such as /srv/NAME"
    return None


def nested(outer: str, inner: str) -> bool:
    return outer != inner and (outer == "/" or inner.startswith(outer + "/"))
