"""Pulumi components: they only wire resources; what to run comes from render/."""
