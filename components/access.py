"""How node scripts reach their node: SSH to a guest (through the hypervisor when it is
remote), or the hypervisor itself (this machine, or SSH)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Optional, Union

import pulumi
from pulumi_command import local, remote

from render.script import NodeScript
from spec.model import Hypervisor

# Guests under software emulation take a minute or two to boot: keep dialling.
BOOT_DIAL_LIMIT = 120


@dataclass(frozen=True)
class Access:
    host: str
    user: str
    private_key: pulumi.Input[str]
    # user@host of the hypervisor when the guest network is only reachable from there.
    jump: Optional[str] = None

    def connection(self, dial_error_limit: Optional[int] = None) -> remote.ConnectionArgs:
        proxy = None
        if self.jump:
            user, host = self.jump.split("@", 1)
            proxy = remote.ProxyConnectionArgs(host=host, user=user, private_key=self.private_key)
        return remote.ConnectionArgs(
            host=self.host,
            user=self.user,
            private_key=self.private_key,
            dial_error_limit=dial_error_limit,
            proxy=proxy,
        )


def as_command(script_text: str) -> str:
    """Whatever the login shell, the script runs in bash (it needs pipefail and [[ ]])."""
    return "bash -c " + shlex.quote(script_text)


def run_on_node(
    name: str,
    access: Access,
    script: NodeScript,
    opts: pulumi.ResourceOptions,
    stdin: Optional[pulumi.Input[str]] = None,
    dial_error_limit: Optional[int] = None,
) -> remote.Command:
    return remote.Command(
        name,
        connection=access.connection(dial_error_limit),
        create=as_command(script.create),
        delete=as_command(script.delete),
        stdin=stdin,
        logging=remote.Logging.STDOUT_AND_STDERR,
        # Our deletes need no earlier output; passing it would ask sshd for AcceptEnv.
        add_previous_output_in_env=False,
        opts=opts,
    )


def run_on_hypervisor(
    name: str,
    hv: Hypervisor,
    script: NodeScript,
    private_key: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
    stdin: Optional[pulumi.Input[str]] = None,
) -> Union[local.Command, remote.Command]:
    target = hv.ssh_target
    if target is None:
        return local.Command(
            name,
            create=script.create,
            delete=script.delete,
            interpreter=["/bin/bash", "-c"],
            stdin=stdin,
            logging=local.Logging.STDOUT_AND_STDERR,
            add_previous_output_in_env=False,
            opts=opts,
        )
    user, host = target.split("@", 1)
    return run_on_node(name, Access(host, user, private_key), script, opts, stdin)
