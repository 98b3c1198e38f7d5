"""The Firecracker backend: microVMs over Firecracker's HTTP API, optionally under its jailer."""
