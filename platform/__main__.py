"""gfs2-platform: one stack per group of shared hypervisors (platform/stacks/). Its
tenants are the stack files in ../stacks/ that name it."""

import json
import subprocess
import sys
from pathlib import Path

import pulumi
import pulumi.runtime.config as runtime_config
import pulumi_libvirt as libvirt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spec import SpecError  # noqa: E402
from spec.platform import IMAGES_PATH, IMAGES_POOL, load_platform, registry, tenants  # noqa: E402
from spec.stack_file import stack_files  # noqa: E402
from spec.vocabulary import PLATFORM_PROJECT as PROJECT  # noqa: E402


def read_config() -> dict:
    prefix = PROJECT + ":"
    out = {}
    for key, text in runtime_config.CONFIG.get().items():
        if key.startswith(prefix):
            name = key[len(prefix):]
            out[name] = json.loads(text)
    return out


def image_path(image: str) -> str:
    if image != "builtin":
        return image
    folder = subprocess.run([ROOT / "image" / "build.sh", "--print-dir"], capture_output=True, text=True, check=True)
    return str(Path(folder.stdout.strip()) / "disk.qcow2")


try:
    spec = load_platform(read_config())
    this_stack = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
    found = tenants(spec, this_stack, stack_files(ROOT / "stacks"))
except SpecError as e:
    raise pulumi.RunError(str(e)) from None

pools, images = {}, {}
for hv in spec.hypervisors:
    provider = libvirt.Provider(f"{hv.name}", uri=hv.uri)
    on_hv = pulumi.ResourceOptions(provider=provider)
    pool = libvirt.Pool(
        f"{hv.name}-images", name=IMAGES_POOL, type="dir", target=libvirt.PoolTargetArgs(path=IMAGES_PATH), opts=on_hv
    )
    base = libvirt.Volume(f"{hv.name}-base", name="g2-base.qcow2", pool=pool.name, source=image_path(hv.image), opts=on_hv)
    pools[hv.name], images[hv.name] = pool.name, base.id

pulumi.export("registry", registry(found))
pulumi.export("pools", pools)
pulumi.export("baseVolumes", images)
