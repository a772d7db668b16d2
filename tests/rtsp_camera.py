"""Cameras for the tests: a real RTSP server, and TCP servers that misbehave.

``RtspCamera`` runs GStreamer's RTSP server (``tests/rtsp_server_gst.py``, Debian's
``gir1.2-gst-rtsp-server-1.0`` under Debian's ``/usr/bin/python3``) as a subprocess on a free
127.0.0.1 port, serving a clip the test made, paced in real time. A test can kill it mid-stream
(a camera losing power) and start it again on the same port, or freeze it (SIGSTOP: the
connection stays open and nothing comes, as with a hung camera).

``JunkServer`` answers every RTSP request with random bytes, ``JunkDescriptionServer`` with a
well-formed reply carrying a random stream description, ``CorruptingProxy`` relays a real
camera and then turns its stream into random bytes mid-way, and ``SilentServer`` accepts and
never answers. None is a stand-in for a camera: they are the failures themselves, made real.
``MjpegServer`` is a camera of another kind, an HTTP MJPEG one, served by this process.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import pytest

from cli.redis_server import free_port

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server_gst.py")
_CHECK = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
          "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
          "missing = [e for e in ('qtdemux', 'h264parse', 'h265parse', 'rtph264pay', 'rtph265pay', "
          "'aacparse', 'rtpmp4gpay') if Gst.ElementFactory.find(e) is None]; "
          "assert not missing, 'missing GStreamer elements: ' + ', '.join(missing)")


@lru_cache(maxsize=1)
def gstreamer_missing() -> str | None:
    """Why GStreamer's RTSP server cannot run here (None: it can)."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} is absent"
    check = subprocess.run([SYSTEM_PYTHON, "-c", _CHECK], capture_output=True, text=True, timeout=60)
    if check.returncode:
        lines = check.stderr.strip().splitlines() or ["unknown error"]
        return ("GStreamer's RTSP server is not installed (apt-get install gir1.2-gst-rtsp-server-1.0 "
                f"python3-gi): {lines[-1]}")
    return None


class RtspCamera:
    def __init__(self, clip: Path, codec: str = "h264", audio: bool = False, port: int | None = None,
                 log_path: Path | None = None, feeds: int = 1):
        reason = gstreamer_missing()
        if reason:          # every test with a camera skips, saying why, whether or not it asked first
            pytest.skip(reason)
        self.clip, self.codec, self.audio, self.feeds = Path(clip), codec, audio, feeds
        self.port = port or free_port()
        self.log_path = log_path or self.clip.with_suffix(f".rtsp-{self.port}.log")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.feed_url(1)

    def feed_url(self, n: int) -> str:
        """The address of feed n (1 to ``feeds``): the same clip, another stream address, as
        several cameras behind one server are (the farm registers each address once)."""
        assert 1 <= n <= self.feeds, f"feed {n} of {self.feeds}"
        return f"rtsp://127.0.0.1:{self.port}/cam{n if n > 1 else ''}"

    def start(self, timeout: float = 30.0) -> "RtspCamera":
        args = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port), "--clip", str(self.clip),
                "--codec", self.codec, "--feeds", str(self.feeds)] + (["--audio"] if self.audio else [])
        # Debian's Python with its own modules only: none of the test virtualenv's.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, env=env, text=True)
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline().strip() if ready else ""
        if line != "ready":
            self.kill()
            raise RuntimeError(f"the RTSP server did not start (see {self.log_path}): {line!r}")
        return self

    def kill(self) -> None:
        """The camera loses power: every connection drops at once."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)   # a frozen one must be able to die
            self.process.kill()
            self.process.wait()
        if self.process is not None:
            self.process.stdout.close()
        self.process = None

    def freeze(self) -> None:
        """The camera hangs: connections stay open, nothing more is sent."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def __enter__(self) -> "RtspCamera":
        return self.start()

    def __exit__(self, *_):
        self.kill()


class _TcpServer:
    """A loopback TCP server that hands each connection to ``serve`` in a thread of its own."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        for conn in self._open:
            conn.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


class JunkServer(_TcpServer):
    """Answers each RTSP request with random bytes."""

    def serve(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        try:
            while not self._stop.is_set() and conn.recv(4096):
                conn.sendall(os.urandom(2048))
        except OSError:
            pass


class JunkDescriptionServer(_TcpServer):
    """Answers each RTSP request with a well-formed "200 OK" whose body is random bytes."""

    def serve(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        try:
            while not self._stop.is_set():
                request = conn.recv(4096).decode("latin-1")
                if not request:
                    return
                cseq = next((line for line in request.split("\r\n") if line.lower().startswith("cseq")), "CSeq: 1")
                body = os.urandom(512)
                conn.sendall(f"RTSP/1.0 200 OK\r\n{cseq}\r\nContent-Type: application/sdp\r\n"
                             f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        except OSError:
            pass


class CorruptingProxy(_TcpServer):
    """Relays RTSP connections to a real camera until ``corrupt()``; from then on, everything
    the camera sends arrives as random bytes of the same length (garbage mid-stream)."""

    def __init__(self, camera_port: int):
        self.camera_port = camera_port
        self.corrupting = threading.Event()
        super().__init__()

    def corrupt(self) -> None:
        self.corrupting.set()

    def serve(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.camera_port), timeout=5)
        except OSError:
            conn.close()
            return
        self._open.append(upstream)
        threading.Thread(target=self._relay, args=(conn, upstream, False), daemon=True).start()
        self._relay(upstream, conn, True)

    def _relay(self, source: socket.socket, target: socket.socket, from_camera: bool) -> None:
        source.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            if from_camera and self.corrupting.is_set():
                data = os.urandom(len(data))
            try:
                target.sendall(data)
            except OSError:
                break
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class SilentServer(_TcpServer):
    """Accepts connections, reads what comes, never answers."""

    def serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        while not self._stop.is_set():
            try:
                if not conn.recv(4096):
                    return
            except TimeoutError:
                continue
            except OSError:
                return


class MjpegServer(_TcpServer):
    """An HTTP MJPEG camera (``multipart/x-mixed-replace``, as IP cameras serve at
    ``/video.mjpg``): ``pictures`` (JPEG bytes) sent in a loop at ``fps``, paced by the clock;
    ``sent`` holds when each picture of the latest connection went out (unix s)."""

    def __init__(self, pictures: list[bytes], fps: float):
        self.pictures, self.fps, self.sent = pictures, fps, []
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg"

    def serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            conn.recv(4096)   # the request: one GET, whatever it asks
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n")
            self.sent, start, n = [], time.time(), 0
            while not self._stop.is_set():
                wait = start + n / self.fps - time.time()
                if wait > 0:
                    time.sleep(wait)
                picture = self.pictures[n % len(self.pictures)]
                self.sent.append(time.time())
                conn.sendall(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(picture)
                             + picture + b"\r\n")
                n += 1
        except OSError:
            pass


@contextmanager
def running_ingest(registry, **options):
    """The camera ingester (``CameraIngest``) in a thread of this process, watching only the
    cameras the test registers (others left by earlier tests are deleted first); stopped, and
    its watches ended, on the way out."""
    from tasks.camera_ingest import CameraIngest

    for other in registry.cameras():
        registry.delete(other["id"])
    stop = threading.Event()
    ingest = CameraIngest(registry, poll_s=0.2, **options)
    runner = threading.Thread(target=ingest.run, args=(stop,), daemon=True)
    runner.start()
    try:
        yield ingest
    finally:
        stop.set()
        runner.join(60)


def open_recordings(camera_id: str) -> list[str]:
    """The camera's recordings not yet made jobs (other tests' cameras may leave theirs: an
    ingester killed on purpose hands nothing over, and the sweep adopts it later)."""
    from services import runtime  # the process's store: these tests' farm

    store, found = runtime.store(), []
    for key in store.list_keys("recordings"):
        if key.endswith("/recording.json"):
            try:
                if json.loads(store.local_path(key).read_text())["camera_id"] == camera_id:
                    found.append(key.split("/")[1])
            except FileNotFoundError:      # made a job as we looked
                pass
    return found
