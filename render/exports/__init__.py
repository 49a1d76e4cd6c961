"""Block exports over IP, one module per protocol behind render.exports.base.ExportProtocol."""

from render.exports.base import ExportProtocol
from render.exports.gnbd import GNBD
from render.exports.iscsi import ISCSI
from render.exports.nbd import NBD

PROTOCOLS: dict[str, ExportProtocol] = {p.name: p for p in (GNBD, ISCSI, NBD)}


def protocol(name: str) -> ExportProtocol:
    return PROTOCOLS[name]
