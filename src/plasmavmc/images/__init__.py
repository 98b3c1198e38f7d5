"""Images: the image store, node cache, qemu-img wrapper and the default guest image builder."""
