"""The wire layer: proto <-> dataclass conversion, status <-> error mapping, request-edge helpers,
the request guard every gRPC port runs first.

Below every process (api, agent, client, core); imports only types, errors and the generated v1 stubs."""
