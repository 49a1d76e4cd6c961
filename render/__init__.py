"""Pure renderers: spec.Topology in, text out (libvirt XSLT, cluster configs, node scripts).

No Pulumi import here; components/ turns what these produce into resources.
"""
