"""The missing-binary rule (tests/binaries.py): a skip outside CI, a failure under CI, never a silent pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import binaries

ROOT = Path(__file__).resolve().parents[2]
PROBE = '''
from tests import binaries

@binaries.require("plasmavmc-no-such-binary")
def test_marked() -> None:
    pass

def test_inside() -> None:
    binaries.require_now("plasmavmc-no-such-binary")
'''


def _run(tmp_path: Path, env: dict[str, str]) -> tuple[int, str]:
    """pytest on a probe file in `tmp_path` with the suite's hooks (its conftest) and `env`."""
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_configure, pytest_runtest_setup\n")
    (tmp_path / "test_probe.py").write_text(PROBE)
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", binaries.STRICT_ENV)}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)]
    result = subprocess.run(argv, cwd=tmp_path, env={**clean, "PYTHONPATH": str(ROOT), **env},
                            capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout


@pytest.mark.parametrize("env", [{binaries.STRICT_ENV: "1"}, {"CI": "true"}])
def test_missing_binary_fails_under_ci(tmp_path: Path, env: dict[str, str]) -> None:
    rc, out = _run(tmp_path, env)
    assert rc == 1, out
    assert "FAILED test_probe.py::test_inside" in out and "ERROR test_probe.py::test_marked" in out, out
    assert "plasmavmc-no-such-binary is not installed" in out


def test_missing_binary_skips_outside_ci(tmp_path: Path) -> None:
    rc, out = _run(tmp_path, {})
    assert rc == 0 and "2 skipped" in out, out


def test_installed_binary_is_found() -> None:
    assert binaries.missing("python3") is None
    assert binaries.missing("plasmavmc-no-such-binary") is not None
