"""The leader's control loops: reconcile, adoption of pending operations, the VM state index."""
