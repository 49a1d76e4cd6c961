"""GFS2 itself, the same in both generations: made once, never over existing data."""

from __future__ import annotations

from render.script import NodeScript, node_script
from spec.topology import FilesystemPlan

MKFS_TIMEOUT = 300


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
