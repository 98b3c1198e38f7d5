"""The wire layer: what crosses a gRPC port (conversion, statuses, the request guard)."""
