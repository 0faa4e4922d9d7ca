"""Fixtures of the API tests: an app on a trained home, a home with v1 and v2, a real server."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from churn_lib import Home


@pytest.fixture(scope="session")
def _two_versions_template(_trained_template, tmp_path_factory) -> Path:
    """The trained template plus v2 (seed 7, current), built once per session."""
    from churn_lib.learn import train as training

    root = tmp_path_factory.mktemp("two_versions") / "home"
    shutil.copytree(_trained_template, root)
    result = training.train(home=root, params=training.TrainParams(seed=7))
    assert result.promoted and result.entry["version"] == "v2"
    return root


@pytest.fixture
def two_versions_home(_two_versions_template, home) -> Home:
    """A home with v1 and v2 registered, v2 current (a private copy)."""
    shutil.rmtree(home.root)
    shutil.copytree(_two_versions_template, home.root)
    return home


@pytest.fixture
def client(trained_home) -> Iterator[TestClient]:
    """A TestClient on the app of a home where v1 is current (startup and shutdown run)."""
    from serve.app import create_app

    with TestClient(create_app(trained_home)) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(home: Home, *, workers: int = 1, timeout: float = 60.0, args: tuple[str, ...] = (),
                   env: dict[str, str] | None = None) -> Iterator[str]:
    """``churn serve`` on 127.0.0.1 and a free port; yields its URL; always stopped (SIGTERM, then SIGKILL).

    ``args`` are added to the command, ``env`` to its environment (which has no other ``CHURN_`` variable).
    """
    port = free_port()
    cmd = [sys.executable, "-m", "churn_lib.cli", "serve", "--home", str(home.root), "--port", str(port),
           "--workers", str(workers), *args]
    log = open(home.root / f"server-{port}.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**{k: v for k, v in os.environ.items() if not k.startswith("CHURN_")},
                                 **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited with {proc.returncode}: "
                                     + (home.root / f"server-{port}.log").read_text()[-2000:])
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("server did not answer /health in time")
            time.sleep(0.1)
        pids: set[int] = set()
        while len(pids) < workers:  # every worker up (each request is a new connection)
            pids.add(httpx.get(url + "/health", timeout=5).json()["pid"])
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(pids)} of {workers} workers answered /health in time")
            time.sleep(0.02)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # our own session: the server and its workers
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
