"""Stand-in program (see Pulumi.yaml): one local Command per file, its text on stdin."""

import shlex
import time

import pulumi
from pulumi_command import local

config = pulumi.Config()
out = config.require("outDir")
files = config.get_object("files") or {}
after = config.get("afterWrite") or ""
hold = config.get_int("holdSeconds") or 0
# A secret the CI secret store gives (tools/ci-stack.sh sets it on stdin), deployed as a file.
key = config.get_secret("sshPrivateKey")

written = []
for name, text in sorted(files.items()):
    path = shlex.quote(f"{out}/{name}")
    written.append(
        local.Command(
            f"file-{name}",
            create=f"mkdir -p {shlex.quote(out)} && cat > {path}",
            delete=f"rm -f {path}",
            stdin=text,
        )
    )
if key is not None:
    path = shlex.quote(f"{out}/deploy.key")
    written.append(
        local.Command(
            "deploy-key",
            create=f"mkdir -p {shlex.quote(out)} && umask 077 && cat > {path}",
            delete=f"rm -f {path}",
            stdin=key,
        )
    )
if hold:
    # A new run id every update: the step runs each time, holding the update open.
    local.Command("hold", create=f"sleep {hold}", triggers=[pulumi.get_stack(), str(time.time_ns())])
if after:
    local.Command("after-write", create=f"cd {shlex.quote(out)} && {after}",
                  opts=pulumi.ResourceOptions(depends_on=written))

pulumi.export("outDir", out)
pulumi.export("files", sorted(files))
