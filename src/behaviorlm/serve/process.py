"""``behaviorlm serve`` as a child process: started on a free loopback port, ready, stopped.

For integration tests and load tests that need the real server (uvicorn over a socket, a
process that can be killed), not an app inside the test process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A running ``behaviorlm serve``: its process, base URL and log file.

    A context manager: leaving the ``with`` block stops the server.

    Examples
    --------
    >>> import httpx
    >>> with start_server("runs/markov", "sqlite:///ev.db", "server.log") as s:  # doctest: +SKIP
    ...     httpx.get(f"{s.url}/healthz").json()["status"]
    'ok'
    """

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (graceful shutdown), then SIGKILL after ``timeout_s``; waits for the exit."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout_s)


def start_server(
    artifact: str | Path,
    store_url: str,
    log: str | Path,
    *,
    api_key_env: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 90.0,
    options: Sequence[str] = (),
) -> ServerProcess:
    """Start ``behaviorlm serve ARTIFACT`` on a free loopback port; return once ``/readyz``
    answers 200.

    Parameters
    ----------
    artifact : path
        Folder written by ``behaviorlm train``.
    store_url : str
        The event store, ``sqlite:///path/to/events.db``.
    log : path
        The server's output (stdout and stderr) is appended here.
    api_key_env : str, optional
        Name of the environment variable with the API key (``--api-key-env``).
    env : mapping, optional
        The child's environment (default: this process's).
    timeout_s : float
        Longest wait for readiness.
    options : sequence of str
        More options of ``behaviorlm serve`` (for example ``["--no-trace"]``).

    Raises
    ------
    RuntimeError
        When the server exits or is not ready in time (with its log); it is stopped first.

    Examples
    --------
    >>> with start_server("runs/markov", "sqlite:///ev.db", "log") as server:  # doctest: +SKIP
    ...     httpx.get(f"{server.url}/readyz").json()["status"]
    'ready'
    """
    port = free_port()
    cmd = [sys.executable, "-m", "behaviorlm.cli", "serve", str(artifact), "--store", store_url]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    if api_key_env is not None:
        cmd += ["--api-key-env", api_key_env]
    cmd += list(options)
    log = Path(log)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ if env is None else env)
        )
    server = ServerProcess(proc=proc, url=f"http://127.0.0.1:{port}", log=log)
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"the server was not ready in {timeout_s:.0f} s:\n{log.read_text()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=1.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
