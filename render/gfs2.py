"""GFS2 itself, the same in both generations: made once, never over existing data."""

from __future__ import annotations

from render.script import NodeScript, node_script
from spec.topology import FilesystemPlan

MKFS_TIMEOUT = 300
# A member being added waits for its journal; the file system is mounted on the others.
JOURNALS_TIMEOUT = 300


def mkfs(fs: FilesystemPlan) -> NodeScript:
    return node_script(
        f"mkfs-{fs.fs_name}",
        "gfs2_mkfs.sh",
        "gfs2_mkfs_delete.sh",
        device=fs.device,
        lock_table=fs.lock_table,
        journals=fs.journals,
        timeout=MKFS_TIMEOUT,
    )


def journals(fs: FilesystemPlan) -> NodeScript:
    """Once, on the first member, before any member joins: journals for every member."""
    return node_script(
        f"journals-{fs.fs_name}",
        "gfs2_journals.sh",
        "gfs2_journals_delete.sh",
        device=fs.device,
        mount_point=fs.mount_point,
        journals=fs.journals,
        timeout=JOURNALS_TIMEOUT,
    )
