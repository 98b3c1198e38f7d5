"""Node-side tenant networking: the `NetworkProvider` interface (spec §10.2) and its providers.

Layer: may import `types`, `errors`, `wire`; never `core`, `api`, `agent`, `server`. The control plane
does IPAM and resolves security groups; a provider only plumbs what it is told (`PortRequest`).
"""
