"""A real S3-compatible server for the tests and the benchmarks: s3rver (npm), which `make test`
installs into build/node_modules, on 127.0.0.1 and a free port, its objects in a folder of the
caller's (so a restart keeps them, as a real object store does)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

from cli.redis_server import free_port

S3RVER = Path(__file__).resolve().parents[1] / "build" / "node_modules" / "s3rver" / "bin" / "s3rver.js"
# s3rver's fixed credentials (it checks request signatures against them).
ACCESS_KEY = SECRET_KEY = "S3RVER"
BUCKET = "vidfarm"


def missing() -> str | None:
    """Why no server can be started here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (Debian's nodejs; .ci/run installs npm, which brings it)"
    if not S3RVER.is_file():
        return f"{S3RVER} is absent: `make test` installs s3rver from npm"
    return None


class S3Server:
    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1", bucket: str = BUCKET,
                 on_host: Callable[[list[str]], list[str]] | None = None):
        """``on_host``: wraps the command line to run it elsewhere (the multi-host test's
        ``Network.on``: a network namespace this process reaches over its bridge)."""
        self.data_dir, self.host, self.bucket, self.on_host = Path(data_dir), host, bucket, on_host
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        """The settings that point vidfarm's processes at this server's bucket."""
        return {"VIDFARM_BLOB_STORE": "s3", "VIDFARM_S3_ENDPOINT": self.endpoint, "VIDFARM_S3_BUCKET": self.bucket,
                "VIDFARM_S3_ACCESS_KEY_ID": ACCESS_KEY, "VIDFARM_S3_SECRET_ACCESS_KEY": SECRET_KEY}

    def start(self) -> "S3Server":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = ["node", str(S3RVER), "--directory", str(self.data_dir), "--address", self.host,
                   "--port", str(self.port), "--silent", "--configure-bucket", self.bucket]
        if self.on_host:
            command = self.on_host(command)
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        start_new_session=True)
        deadline = time.monotonic() + 30
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"s3rver exited: {self.process.stderr.read().decode(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"s3rver did not answer on {self.endpoint} within 30 s")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        try:
            socket.create_connection((self.host, self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def __enter__(self) -> "S3Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
