"""VM lifecycle: create/start/stop/delete, power operations, devices, snapshots, disks, placement, watch."""
