"""A SIMULATED hypervisor backend for scale tests and benchmarks: it boots nothing (see backend.py)."""

from plasmavmc.hypervisor.simulated.backend import SimulatedBackend

__all__ = ["SimulatedBackend"]
