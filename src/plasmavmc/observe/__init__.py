"""Observability shared by server and agent: metrics, per-request log context, the gRPC interceptor,
gRPC health and reflection services. Depends on nothing above `errors` and `types`."""
