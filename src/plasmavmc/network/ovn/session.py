"""One lazily opened `ovsdbapp` session to an OVSDB server (OVN northbound or a node's Open_vSwitch).

ovsdbapp keeps one connection per backend *class*, so each session makes a fresh subclass: two
providers in one process (two nodes in one test) never share a connection. The session opens on first
use (blocking: called from a worker thread) and `close` stops its thread.
"""

from __future__ import annotations

from typing import Any

from ovsdbapp.backend.ovs_idl import connection


class Session:
    schema = ""

    def __init__(self, endpoint: str, backend: type[Any], timeout: float = 30.0) -> None:
        self.endpoint, self.backend, self.timeout = endpoint, backend, timeout
        self._api: Any = None
        self._conn: Any = None

    @property
    def api(self) -> Any:
        if self._api is None:
            idl = connection.OvsdbIdl.from_server(self.endpoint, self.schema)
            self._conn = connection.Connection(idl=idl, timeout=self.timeout)
            fresh = type(f"Plasma{self.backend.__name__}", (self.backend,), {"_ovsdb_connection": None})
            self._api = fresh(self._conn)
        return self._api

    def close(self) -> None:
        if self._conn is not None:
            self._conn.stop(timeout=10)
            self._api = self._conn = None
