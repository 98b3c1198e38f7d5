"""requirements.lock pins every dependency pyproject.toml declares (runtime and dev): scripts/setup installs
the lock and then the package with --no-deps, so a dependency missing from the lock is missing on a fresh
machine."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_declared_dependency_is_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    names = {_norm(m.group(0)) for spec in declared if (m := re.match(r"[A-Za-z0-9][A-Za-z0-9_.-]*", spec))}
    pinned = {_norm(line.split("==")[0]) for line in (ROOT / "requirements.lock").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    assert names - pinned == set(), "regenerate requirements.lock (see its header)"
