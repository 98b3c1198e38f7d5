"""The QEMU/KVM backend: argv builder, accelerator choice, QMP use, exit watcher, lifecycle."""

from plasmavmc.hypervisor.qemu.backend import QemuBackend

__all__ = ["QemuBackend"]
