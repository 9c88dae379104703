"""One moto server per test session, in its own process on a loopback port, reset per test.

The server is moto's, with one fix to its delivery of transformed events (see
:mod:`tests.support.moto_fixed`).

:func:`moto_server` starts ``moto_server`` on first use and returns it; later calls return the
same one. :meth:`MotoServer.reset` empties every service (call it at the start of each test).
The server runs under the same stdin guard as DynamoDB Local (it dies with this process) and is
stopped by :func:`stop_moto_server` at session end and at interpreter exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tests.support.dynamodb_local import (
    _GUARD,
    ACCESS_KEY_ID,
    REGION,
    REPO_ROOT,
    SECRET_ACCESS_KEY,
    _free_port,
)
from tests.support.session_server import SessionServer

START_TIMEOUT = 30.0


class MotoServer:
    """A running moto server: its endpoint, clients on it, and a reset of its state."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str, **config: Any) -> Any:
        """A boto3 client of ``service`` on this server (fake credentials, us-east-1)."""
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(**config),
        )

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point every client at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        }

    def reset(self) -> None:
        """Forget every queue, topic, bus and metric."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()
        self.log_path.unlink(missing_ok=True)

    @classmethod
    def start(cls) -> MotoServer:
        port = _free_port()
        log_fd, log_name = tempfile.mkstemp(prefix="moto-server-", suffix=".log")
        command = [sys.executable, "-m", "tests.support.moto_fixed"]
        process = subprocess.Popen(
            ["sh", "-c", _GUARD, "moto-guard", *command, "-H", "127.0.0.1", "-p", str(port)],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        os.close(log_fd)
        server = cls(process, port, Path(log_name))
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                log = server.log_path.read_text(errors="replace")[-2000:]
                server.stop()
                msg = f"moto_server exited with status {process.returncode}: {log}"
                raise RuntimeError(msg)
            try:
                server.reset()
            except OSError:
                if time.monotonic() > deadline:
                    server.stop()
                    msg = f"moto_server did not answer within {START_TIMEOUT:.0f} s"
                    raise RuntimeError(msg) from None
                time.sleep(0.1)
            else:
                return server


_session_server = SessionServer(MotoServer.start)


def moto_server() -> MotoServer:
    """The session's moto server, started on first call."""
    return _session_server.get()


def stop_moto_server() -> None:
    """Stops the session's moto server if one was started; safe to call more than once."""
    _session_server.stop()
