"""The bench's own arithmetic and timing: the critical path that bounds a build, the order
the serial baseline runs its commands in, and the CLI time of each engine run."""

from __future__ import annotations

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))

from cluster import JOIN_STEP, serial_order  # noqa: E402
from engine import Node, critical_path  # noqa: E402

COMMAND = "command:remote:Command"


def node(name: str, *deps: str, create: str = "") -> Node:
    return Node(f"urn:pulumi:t::p::{COMMAND}::{name}", COMMAND, {"create": create}, "", "",
                frozenset(f"urn:pulumi:t::p::{COMMAND}::{d}" for d in deps))


def test_critical_path_follows_the_longest_chain_not_the_longest_step():
    # a -> b -> d and a -> c -> d: c is the longest single step, but a-b-d is longer.
    nodes = [node("a"), node("b", "a"), node("c", "a"), node("d", "b", "c"), node("e", "a")]
    seconds = {n.urn: s for n, s in zip(nodes, (1.0, 5.0, 4.5, 2.0, 3.0))}
    total, path = critical_path(nodes, seconds)
    assert total == 8.0
    assert path == [{"name": "a", "seconds": 1.0}, {"name": "b", "seconds": 5.0}, {"name": "d", "seconds": 2.0}]


def test_critical_path_counts_untimed_steps_as_nothing():
    nodes = [node("a"), node("b", "a"), node("c", "b")]
    total, path = critical_path(nodes, {nodes[0].urn: 2.0, nodes[2].urn: 3.0})
    assert total == 5.0
    assert [p["name"] for p in path] == ["a", "b", "c"] and path[1]["seconds"] == 0.0


def test_critical_path_of_nothing():
    assert critical_path([], {}) == (0.0, [])


JOIN = f"#!/bin/bash\n{JOIN_STEP}"


@pytest.fixture
def cluster_steps():
    return [
        node("base-m1"), node("base-m2"), node("base-m3"),
        node("join-m1", "base-m1", create=JOIN),
        node("join-m2", "base-m2", "join-m1", create=JOIN),
        node("join-m3", "base-m3", "join-m1", create=JOIN),
        node("status", "join-m1"),  # needs only the first member
        node("locking", "join-m2", "join-m3"),
        node("mount", "locking"),
    ]


def test_serial_order_runs_the_later_joins_together_and_what_needs_them_after(cluster_steps):
    first, together, after = serial_order(cluster_steps)
    assert [n.name for n in first] == ["base-m1", "base-m2", "base-m3", "join-m1", "status"]
    assert [n.name for n in together] == ["join-m2", "join-m3"]
    assert [n.name for n in after] == ["locking", "mount"]


def test_serial_order_runs_every_step_once(cluster_steps):
    first, together, after = serial_order(cluster_steps)
    assert sorted(n.name for n in first + together + after) == sorted(n.name for n in cluster_steps)


def test_serial_order_of_one_member_has_nothing_to_run_together():
    one = [node("base-m1"), node("join-m1", "base-m1", create=JOIN), node("status", "join-m1"),
           node("locking", "join-m1"), node("mount", "locking")]
    first, together, after = serial_order(one)
    assert together == [] and after == []
    assert [n.name for n in first] == ["base-m1", "join-m1", "status", "locking", "mount"]


def test_timed_command_times_each_verb_by_its_name(tmp_path):
    # The real CLI; Automation API puts --non-interactive in front of the verb.
    from engine import TimedCommand

    cli = TimedCommand()
    cli.run(["version"], str(tmp_path), {})
    cli.run(["about", "--help"], str(tmp_path), {})
    assert set(cli.seconds) == {"version", "about"}
    assert all(s > 0 for s in cli.seconds.values())
