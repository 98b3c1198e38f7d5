"""The explicit map of hypervisor backends an agent runs (spec §4.3), built from `[hypervisors]`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from plasmavmc.config.agent import AgentSettings
from plasmavmc.errors import HypervisorError, Unimplemented
from plasmavmc.hypervisor.base import HypervisorBackend
from plasmavmc.hypervisor.firecracker import spec as firecracker_spec
from plasmavmc.hypervisor.mvisor import spec as mvisor_spec
from plasmavmc.hypervisor.qemu import spec as qemu_spec
from plasmavmc.hypervisor.spec_check import BootImage, SpecCheck, accept_all
from plasmavmc.types.vm import HypervisorType, VmSpec


class HypervisorRegistry:
    def __init__(self) -> None:
        self._backends: dict[HypervisorType, HypervisorBackend] = {}

    def register(self, backend: HypervisorBackend) -> None:
        self._backends[backend.backend_type()] = backend

    def get(self, typ: HypervisorType) -> HypervisorBackend:
        backend = self._backends.get(typ)
        if backend is None:
            raise HypervisorError(f"hypervisor {typ.value} is not enabled on this node")
        return backend

    def available(self) -> list[HypervisorType]:
        return list(self._backends)

    def all(self) -> list[HypervisorBackend]:
        return list(self._backends.values())


#: One pure spec check per backend (`spec_check.SpecCheck`); the backend's `supports()` runs the same one.
SPEC_CHECKS: dict[HypervisorType, SpecCheck] = {
    HypervisorType.KVM: qemu_spec.check,
    HypervisorType.FIRECRACKER: firecracker_spec.check,
    HypervisorType.MVISOR: mvisor_spec.check,
    HypervisorType.SIMULATED: accept_all,
}


#: Per backend, the spec with its defaults that depend on the boot image filled in (QEMU: the machine).
SPEC_DEFAULTS: dict[HypervisorType, Callable[[VmSpec, BootImage | None], VmSpec]] = {
    HypervisorType.KVM: qemu_spec.with_image_defaults,
}


def spec_defaults_for(hypervisor: HypervisorType, spec: VmSpec, boot: BootImage | None) -> VmSpec:
    """`spec` as `hypervisor` would run it with this boot image, what the user left empty filled in."""
    fill = SPEC_DEFAULTS.get(hypervisor)
    return spec if fill is None else fill(spec, boot)


def check_spec_for(hypervisor: HypervisorType, spec: VmSpec, boot: BootImage | None = None) -> None:
    """`hypervisor`'s refusals of `spec` (and of the boot image, when given), for the control plane to
    apply before it stores anything: UnsupportedFeature (INVALID_ARGUMENT) naming feature and field."""
    SPEC_CHECKS.get(hypervisor, accept_all)(spec, boot)


def from_settings(settings: AgentSettings) -> HypervisorRegistry:
    registry = HypervisorRegistry()
    for name in settings.hypervisors.enabled:
        if name == "kvm":
            from plasmavmc.hypervisor.qemu.backend import QemuBackend

            kvm = settings.hypervisors.kvm
            registry.register(QemuBackend(kvm.qemu_path, kvm.qemu_img_path, Path(kvm.runtime_dir), kvm.accel,
                                          kvm.tcg_tb_size_mib))
        elif name == "firecracker":
            from plasmavmc.hypervisor.firecracker.backend import backend_from_settings

            registry.register(backend_from_settings(settings))
        elif name == "mvisor":
            from plasmavmc.hypervisor.mvisor.backend import MvisorBackend

            mv = settings.hypervisors.mvisor
            registry.register(MvisorBackend(mv.mvisor_path, settings.hypervisors.kvm.qemu_img_path,
                                            Path(mv.runtime_dir), Path(mv.bios_path)))
        elif name == "simulated":  # scale tests and benchmarks only: boots nothing
            from plasmavmc.hypervisor.simulated import SimulatedBackend

            registry.register(SimulatedBackend())
        else:
            raise Unimplemented(f"hypervisor {name!r} is not available yet on the agent")
    return registry
