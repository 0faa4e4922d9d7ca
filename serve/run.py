"""Running the HTTP service: ``churn serve`` starts uvicorn on :func:`serve.app.create_app`.

The launcher lives beside the app it runs (serve/ imports churn_lib, never the
reverse): the ``churn`` command finds :func:`run` through the entry point
``churn_mlops.launchers: serve`` that this package declares in pyproject.toml.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile

from churn_lib import ChurnError, Home, InvalidParameter
from churn_lib.serving import METRICS_DIR_ENV

from . import auth

#: The uvicorn factory this launcher runs.
APP = "serve.app:create_app"


def check_port(host: str, port: int) -> None:
    """Refuse a port that is out of range or already taken, before uvicorn starts workers."""
    if not 1 <= port <= 65535:
        raise InvalidParameter(f"--port must be between 1 and 65535, got {port}", name="port")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise InvalidParameter(f"--host {host!r} cannot be resolved: {exc.strerror}", name="host") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise ChurnError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                             "(choose another --port, or stop the process using it)") from None


def run(*, home: Home | str | None = None, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
        access_log: bool = False, log_level: str = "info", token_file: str | os.PathLike | None = None,
        insecure: bool = False, metrics_auth: bool = False) -> None:
    """Serve the home's current model over HTTP with uvicorn until interrupted.

    Parameters
    ----------
    home : Home or path, optional
        Exported to the workers as ``CHURN_HOME``.
    host : str, default="127.0.0.1"
    port : int, default=8000
    workers : int, default=1
        Worker processes; they share the port, the prediction log (lines never
        interleave) and the metrics (prometheus_client multi-process mode).
    access_log : bool, default=False
        One line per request on stderr (every prediction is in the prediction log anyway).
    log_level : str, default="info"
    token_file : path, optional
        Bearer tokens, one per line (re-read when it changes); else ``CHURN_API_TOKEN``, else no authentication.
    insecure : bool, default=False
        Allow a non-loopback ``host`` without a token.
    metrics_auth : bool, default=False
        ``/metrics`` needs a token too (``CHURN_METRICS_AUTH=1``).

    Raises
    ------
    InvalidParameter
        Bad port, host or worker count.
    ChurnError
        The port is taken; the tokens are unusable; a non-loopback host without a token (and not ``insecure``).
    """
    import uvicorn

    home = Home.resolve(home)
    if workers < 1:
        raise InvalidParameter(f"--workers must be at least 1, got {workers}", name="workers")
    saved = {k: os.environ.get(k) for k in ("CHURN_HOME", METRICS_DIR_ENV, auth.TOKEN_FILE_ENV,
                                            auth.METRICS_AUTH_ENV)}
    _check_access(saved, host=host, port=port, token_file=token_file, insecure=insecure, metrics_auth=metrics_auth)
    os.environ["CHURN_HOME"] = str(home.root)
    metrics_dir = None
    if workers > 1:
        metrics_dir = tempfile.mkdtemp(prefix="churn-metrics-")
        os.environ[METRICS_DIR_ENV] = metrics_dir
    try:
        uvicorn.run(APP, factory=True, host=host, port=port, workers=workers, access_log=access_log,
                    log_level=log_level, lifespan="on", timeout_graceful_shutdown=10)
    finally:
        _restore(saved)
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _check_access(saved: dict[str, str | None], *, host: str, port: int, token_file: str | os.PathLike | None,
                  insecure: bool, metrics_auth: bool) -> None:
    """Export the token settings the workers read; check the tokens, the exposure and the port (the
    environment is restored to ``saved`` when a check fails)."""
    if token_file is not None:  # the workers read the same file
        os.environ[auth.TOKEN_FILE_ENV] = str(os.path.abspath(os.path.expanduser(token_file)))
    if metrics_auth:
        os.environ[auth.METRICS_AUTH_ENV] = "1"
    try:
        tokens = auth.Tokens.from_env()
        auth.open_paths()
        auth.check_exposure(host, tokens, insecure)
        check_port(host, port)
    except BaseException:
        _restore(saved)
        raise


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
