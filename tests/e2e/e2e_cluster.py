"""The e2e tests' handle on the local stack (the engine, guests and leftovers are in
tests/live_stack.py, shared with tests/isolation).

One session: leftovers of an earlier run under the stack's names are removed, the stack
comes up once, the tests run against it in file order, and whatever is still up at the
end is destroyed, failures included.
"""

from __future__ import annotations

import os

import pytest

from live_stack import (  # noqa: F401 - also the names test_cluster.py takes from here
    RESULTS, ROOT, Cluster, Engine, clean_start, cluster_of, crm_started_on, leftovers, purge, read_topology, record,
    sha256_on, virsh,
)
from spec.topology import Topology

STACK = "local"


def topology(stack: str = STACK) -> Topology:
    return read_topology(ROOT / "stacks" / f"Pulumi.{stack}.yaml")


@pytest.fixture(scope="session")
def cluster():
    if os.geteuid() != 0:
        pytest.fail("e2e needs root (libvirt qemu:///system, iptables)")
    topo = topology()
    engine = clean_start(Engine(STACK))
    run = engine.up()
    try:
        # The summary leaves out default providers; the steps include them.
        assert run.summary.get("create", 0) > 0 and set(run.ops.values()) == {"create"}, (run.summary, run.ops)
        yield cluster_of(engine, run)
    finally:
        if engine.resources():
            engine.destroy()
        purge(topo)
