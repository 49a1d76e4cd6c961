"""The stack spec: typed, validated models of a tenant cluster, with no Pulumi import."""

from spec.load import SpecError, load_spec
from spec.model import StackSpec
from spec.topology import Topology, build

__all__ = ["SpecError", "StackSpec", "Topology", "build", "load_spec"]
