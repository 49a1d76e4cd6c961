"""gfs2-cluster: one tenant's GFS2 cluster per stack (see stacks/ and README.md)."""

import subprocess
from pathlib import Path

import pulumi

from components import stack_input
from components.tenant_cluster import ImageFiles, TenantCluster, TenantClusterArgs
from spec import SpecError, StackSpec, build

ROOT = Path(__file__).resolve().parent


def image_files(spec: StackSpec) -> ImageFiles:
    img = spec.image
    if img.source == "builtin":
        # image/build.sh owns the recipe hash, so it names the folder of the current image.
        folder = subprocess.run([ROOT / "image" / "build.sh", "--print-dir"], capture_output=True, text=True, check=True)
        d = Path(folder.stdout.strip())
        if not pulumi.runtime.is_dry_run() and not (d / "manifest.json").exists():
            raise pulumi.RunError(f"image.source builtin: no image in {d}; run image/build.sh (make up does)")
        return ImageFiles(str(d / "disk.qcow2"), str(d / "vmlinux"), str(d / "initrd.img"))
    direct = img.boot == "direct"
    return ImageFiles(img.source, img.kernel if direct else None, img.initrd if direct else None)


try:
    spec, secrets = stack_input.read()
except SpecError as e:
    raise pulumi.RunError(str(e)) from None

topo = build(spec)
cluster = TenantCluster(topo.names.stack_id, TenantClusterArgs(topo, secrets, image_files(spec)))

pulumi.export("clusterName", topo.cluster_name)
pulumi.export("memberAddresses", cluster.member_addresses)
pulumi.export("mountPoints", cluster.mount_points)
pulumi.export("domains", [g.domain for g in topo.guests])
pulumi.export("clusterStatus", cluster.status)
