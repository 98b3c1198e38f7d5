"""The OVN provider: logical switches, ports, port groups + ACLs, DHCP options and routers in the
northbound database (`ovsdbapp`), and the VM's tap on the node's `br-int`, bound by `ovn-controller`."""
