"""The PVH test guest: a few hundred bytes of x86 assembly that boot under Firecracker on any KVM."""
