"""A private ``redis-server`` on a free loopback port, for the tool and the tests.

No persistence (``--save '' --appendonly no``), a temporary working directory,
and stopped (with the directory removed) by :meth:`RedisServer.stop`.
:meth:`RedisServer.restart` stops it and starts a fresh one on the same port,
which loses every key: what a crash of a server without persistence does.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["RedisServer", "RedisServerError", "find_redis_server"]

#: Debian's package; named in every error so that a developer knows what to install.
DEBIAN_PACKAGE = "redis-server"


class RedisServerError(RuntimeError):
    """redis-server is missing or did not start (one line, for the user)."""


def find_redis_server() -> str | None:
    """The redis-server binary on PATH (or /usr/bin), or None."""
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``with RedisServer() as server: server.url``: a throw-away Redis on 127.0.0.1."""

    def __init__(self, binary: str | None = None) -> None:
        found = binary or find_redis_server()
        if found is None:
            raise RedisServerError(
                "redis-server not found: install the Debian package "
                f"'{DEBIAN_PACKAGE}' (apt-get install {DEBIAN_PACKAGE}) or pass --redis-url"
            )
        self.binary = found
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="batchsem-redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        #: time.monotonic() when the server last started.
        self.started = 0.0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server and wait until it answers (RedisServerError after 10 s)."""
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
             "--logfile", str(Path(self.dir) / "redis.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = Path(self.dir) / "redis.log"
                text = log.read_text(errors="replace").strip() if log.exists() else ""
                last = text.splitlines()[-1] if text else "no log"
                raise RedisServerError(f"redis-server exited at start: {last}")
            if self._ping():
                self.started = time.monotonic()
                return self
            time.sleep(0.02)
        self.stop()
        raise RedisServerError(f"redis-server did not answer on port {self.port} within 10 s")

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def wait_uptime(self, seconds: float) -> None:
        """Sleep until the server has been up ``seconds`` (a semaphore created earlier
        would withhold its permits: see batchsem.redis)."""
        time.sleep(max(0.0, self.started + seconds - time.monotonic()))

    def kill(self) -> None:
        """SIGKILL the server (every key is lost: there is no persistence)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        """Kill the server and start a new, empty one on the same port."""
        self.kill()
        self.start()

    def stop(self) -> None:
        """Stop the server and remove its directory. Idempotent."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
