"""The default PlasmaVMC guest image ("plasmavmc-tiny"): a Debian kernel, busybox initramfs and ext4 root disk."""
