"""Control-plane logic: VM lifecycle, placement, nodes, agent reports. No gRPC types in here."""
