"""`plasmavmc-server backup FILE` / `restore FILE`: a consistent copy of the state store, taken online.

    plasmavmc-server backup /var/backups/plasmavmc.db  -c /etc/plasmavmc/server.toml
    plasmavmc-server restore /var/backups/plasmavmc.db -c /etc/plasmavmc/server.toml   # server stopped

SQLite: SQLite's online backup API (`sqlite3.Connection.backup`) copies a consistent snapshot while the
server keeps writing (every commit acknowledged before the backup began is in it). etcd: `etcdctl
snapshot save` (the maintenance API's snapshot) against the first endpoint. `restore` puts a SQLite
backup in place of `[store] path` (refusing while that file exists, unless `--force`); an etcd snapshot
is restored with `etcdctl snapshot restore` into a new data dir for each member (docs/operator.md), so
`restore` with an etcd store prints those steps and changes nothing. Files are written to a temp name
and renamed, and never over an existing file without `--force`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from plasmavmc.config.schema import settings_or_exit
from plasmavmc.config.server import ServerSettings, parse_server_args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plasmavmc-server", description="back up or restore the state store")
    parser.add_argument("action", choices=("backup", "restore"), help="what to do")
    parser.add_argument("file", metavar="FILE", help="the backup file")
    parser.add_argument("-c", "--config", metavar="PATH", help="server config file (env PLASMAVMC_CONFIG)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file (default: refuse)")
    return parser


def _refuse_existing(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists: pass --force to overwrite it")


def backup_sqlite(db: Path, dest: Path) -> None:
    if not db.is_file():
        raise FileNotFoundError(f"no SQLite store at {db} ([store] path)")
    tmp = dest.with_name(f".{dest.name}.partial")
    src, out = sqlite3.connect(db), sqlite3.connect(tmp)
    try:
        src.backup(out)  # pages copied in steps; restarts if the server writes meanwhile: the copy is consistent
    finally:
        src.close()
        out.close()
    os.replace(tmp, dest)


def restore_sqlite(backup: Path, db: Path) -> None:
    with sqlite3.connect(f"file:{backup}?mode=ro", uri=True) as check:
        verdict = check.execute("PRAGMA integrity_check").fetchone()[0]
    if verdict != "ok":
        raise ValueError(f"{backup} is not a sound SQLite database: {verdict}")
    db.parent.mkdir(parents=True, exist_ok=True)
    for stale in (Path(f"{db}-wal"), Path(f"{db}-shm")):
        stale.unlink(missing_ok=True)
    tmp = db.with_name(f".{db.name}.partial")
    shutil.copyfile(backup, tmp)
    os.replace(tmp, db)


def backup_etcd(endpoint: str, dest: Path) -> None:
    etcdctl = shutil.which("etcdctl")
    if etcdctl is None:
        raise FileNotFoundError("etcdctl is not installed (Debian package etcd-client)")
    tmp = dest.with_name(f".{dest.name}.partial")
    subprocess.run([etcdctl, f"--endpoints={endpoint}", "snapshot", "save", str(tmp)],
                   check=True, env={**os.environ, "ETCDCTL_API": "3"}, capture_output=True, timeout=600)
    os.replace(tmp, dest)


def run(action: str, file: Path, settings: ServerSettings, force: bool) -> str:
    """Do `action`; returns what was done (one line)."""
    store = settings.store
    if action == "backup":
        _refuse_existing(file, force)
        if store.backend == "etcd":
            backup_etcd(store.etcd_endpoints[0], file)
            return f"etcd snapshot of {store.etcd_endpoints[0]} saved to {file}"
        backup_sqlite(Path(store.path), file)
        return f"SQLite store {store.path} backed up to {file}"
    if store.backend == "etcd":
        return (f"etcd: stop every server, then on each member run `etcdctl snapshot restore {file} "
                "--data-dir NEW_DIR --name M --initial-cluster ...` and start etcd on NEW_DIR "
                "(docs/operator.md); nothing was changed")
    _refuse_existing(Path(store.path), force)
    restore_sqlite(file, Path(store.path))
    return f"{file} restored to {store.path}; start plasmavmc-server"


def main(argv: list[str], env: Mapping[str, str]) -> int:
    args = _parser().parse_args(argv)
    flags = ["-c", args.config] if args.config else []
    settings = settings_or_exit(parse_server_args, flags, env, "plasmavmc-server")
    try:
        print(run(args.action, Path(args.file), settings, args.force))
    except (OSError, ValueError, sqlite3.Error, subprocess.SubprocessError) as err:
        print(f"plasmavmc-server {args.action}: {err}", file=sys.stderr)
        return 1
    return 0
