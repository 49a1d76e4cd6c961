"""Scripts as commands on the machine they are for, reached as its Endpoint (decided in
spec/topology.py) says: over SSH, through the jump host when there is one, or on this
machine for the host-side steps of a local hypervisor."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Optional, Union

import pulumi
from pulumi_command import local, remote

from render.script import NodeScript
from spec.topology import Endpoint

# Guests under software emulation take a minute or two to boot: keep dialling.
BOOT_DIAL_LIMIT = 120


@dataclass(frozen=True)
class Access:
    """How node scripts reach one machine: its endpoint, decided by the Topology, and
    the SSH private key. The key is a Pulumi secret the engine hands the program, so it
    stays a component input and never enters the Topology."""

    endpoint: Endpoint
    private_key: pulumi.Input[str]

    def connection(self, dial_error_limit: Optional[int] = None) -> remote.ConnectionArgs:
        jump = self.endpoint.jump
        proxy = None
        if jump is not None:
            proxy = remote.ProxyConnectionArgs(host=jump.host, user=jump.user, private_key=self.private_key)
        return remote.ConnectionArgs(
            host=self.endpoint.host,
            user=self.endpoint.user,
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
    endpoint: Optional[Endpoint],
    script: NodeScript,
    private_key: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
    stdin: Optional[pulumi.Input[str]] = None,
) -> Union[local.Command, remote.Command]:
    """A host-side step: on this machine when ENDPOINT is None, else over SSH."""
    if endpoint is None:
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
    return run_on_node(name, Access(endpoint, private_key), script, opts, stdin)
