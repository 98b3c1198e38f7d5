"""The running code's identity: the package version (from the installed metadata) and the git revision.

`build_info()` feeds the `plasmavmc_build_info` metric and `--version` of every command. The revision
is asked of git for a source checkout (an editable install); an installed wheel has none ("unknown").
"""

from __future__ import annotations

import functools
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def package_version() -> str:
    try:
        return version("plasmavmc")
    except PackageNotFoundError:
        return "0.0.0+unknown"


@functools.cache
def git_revision() -> str:
    """The short commit of the checkout this code runs from ("+dirty" with local changes), or "unknown"."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "."],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}+dirty" if dirty else rev or "unknown"


def build_info() -> dict[str, str]:
    return {"version": package_version(), "revision": git_revision()}


def version_line(prog: str) -> str:
    info = build_info()
    return f"{prog} {info['version']} (git {info['revision']})"
