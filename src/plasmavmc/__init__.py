"""PlasmaVMC: a small virtual-machine control plane (gRPC API, scheduler, node agents, QEMU/Firecracker)."""
