"""A dev-cluster PKI: a CA and the certificates the processes present (`certs.py`), and who a
certificate names (`identity.py`). Depends on `cryptography` only, nothing else of plasmavmc."""
