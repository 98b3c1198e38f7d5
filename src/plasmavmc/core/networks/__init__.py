"""Tenant networks in the control plane: network records, IPAM, ports and security groups.

The store is the only truth: addresses are claimed one key each with compare-and-swap (`ipam.py`), so
any number of servers allocate concurrently without ever handing out an address twice. Node-side
plumbing (`plasmavmc.network`) receives the results as a `PortRequest`.
"""
