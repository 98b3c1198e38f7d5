"""State stores: the `Store` interface and its implementations (SQLite default, etcd for clusters)."""
