"""The first system-admin: on a store with no `admin` principal, make one and write its API key to a file.

The file (`[iam] bootstrap_credential_path`, default /var/lib/plasmavmc/admin.token) is created with mode
0600. If it already holds a well-formed API key (an operator or a test suite wrote one beforehand), that
key is registered instead of a new one, so several servers or test clusters can share one credential.
Only the replica that wins the compare-and-swap on the principal registers a key; later starts change
nothing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from plasmavmc.errors import AlreadyExists
from plasmavmc.iam import apikeys
from plasmavmc.iam.directory import Directory
from plasmavmc.iam.model import Binding, Principal, PrincipalKind, Role

log = logging.getLogger(__name__)
ADMIN = "admin"


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by its owner only (also when the file existed with a wider mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)
    os.replace(tmp, path)


def _existing_key(path: Path) -> tuple[str, str] | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return apikeys.split(text) if apikeys.looks_like_api_key(text) else None


async def bootstrap(directory: Directory, path: Path) -> bool:
    """Make the `admin` principal (system-admin) if the store has none; True if this call made it."""
    if await directory.principal(ADMIN) is not None:
        return False
    try:
        await directory.create_principal(Principal(ADMIN, PrincipalKind.USER, "", "bootstrap system admin"))
    except AlreadyExists:
        return False  # another replica won
    await directory.bind(Binding(ADMIN, Role.SYSTEM_ADMIN))
    existing = _existing_key(path)
    if existing is not None:
        await directory.add_api_key(apikeys.record_for(ADMIN, *existing, description="bootstrap"))
        log.info("bootstrap: registered the system-admin API key found in %s", path)
        return True
    key, record = apikeys.new_key(ADMIN, description="bootstrap")
    await directory.add_api_key(record)
    write_private(path, key + "\n")
    log.info("bootstrap: wrote a system-admin API key to %s (mode 0600)", path)
    return True
