"""The Linux-bridge `NetworkProvider`: a bridge per tenant network, a tap per NIC, nftables, dnsmasq."""
