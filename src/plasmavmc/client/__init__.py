"""The async Python client of PlasmaVMC (spec §5.3)."""

from plasmavmc.client.base import ClientTls, ConnectionFailed
from plasmavmc.client.client import PlasmaClient

__all__ = ["ClientTls", "ConnectionFailed", "PlasmaClient"]
