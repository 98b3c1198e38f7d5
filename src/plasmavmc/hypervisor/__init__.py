"""Hypervisor backends behind one interface (spec §4): QEMU/KVM, Firecracker, mvisor, simulated."""
