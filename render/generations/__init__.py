"""Cluster generations, one module each behind render.generations.base.Generation."""

from render.generations.base import Generation
from render.generations.current import CURRENT
from render.generations.legacy import LEGACY

GENERATIONS: dict[str, Generation] = {g.name: g for g in (CURRENT, LEGACY)}


def generation(name: str) -> Generation:
    return GENERATIONS[name]
