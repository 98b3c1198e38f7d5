"""Where a client (CLI, `PlasmaClient`, a node agent fetching images) finds its credential when none is
given, first match wins:

1. ``PLASMAVMC_TOKEN`` (a token or API key);
2. the file named by ``PLASMAVMC_CREDENTIALS``;
3. ``~/.config/plasmavmc/credentials`` (written by ``plasmavmc login``, mode 0600);
4. ``/var/lib/plasmavmc/admin.token``, the server's bootstrap system-admin key, when this user can read
   it (root on the server's machine: the quick start needs no login step).

A node agent uses the same lookup for its `DownloadImage` calls until node certificates authenticate it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

USER_FILE = Path("~/.config/plasmavmc/credentials")
BOOTSTRAP_FILE = Path("/var/lib/plasmavmc/admin.token")


def user_file() -> Path:
    return USER_FILE.expanduser()


def _read(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return text or None


def default_credential(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    if env.get("PLASMAVMC_TOKEN"):
        return env["PLASMAVMC_TOKEN"]
    if env.get("PLASMAVMC_CREDENTIALS"):
        return _read(Path(env["PLASMAVMC_CREDENTIALS"]))
    return _read(user_file()) or _read(BOOTSTRAP_FILE)


def save(credential: str) -> Path:
    """Store `credential` as this user's default (mode 0600); returns the file."""
    path = user_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(credential + "\n")
    return path
