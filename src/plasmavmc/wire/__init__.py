"""The wire layer: proto <-> dataclass conversion, status <-> error mapping, request-edge helpers.

Below every process (api, agent, client, core); imports only types, errors and the generated v1 stubs."""
