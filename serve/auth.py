"""Bearer-token authentication for the API (off unless a token is configured).

With ``CHURN_API_TOKEN`` (one token, or several separated by commas or
whitespace) or ``CHURN_API_TOKEN_FILE`` (one token per line; blank lines and
``#`` comments ignored) set, every request except ``GET /health`` (and
``/metrics``, unless ``CHURN_METRICS_AUTH=1``) needs ``Authorization: Bearer
<token>``; anything else gets 401 with ``WWW-Authenticate: Bearer``. Several
tokens at once allow rotation: add the new one, move the clients, remove the
old one. The file is re-read when it changes (checked at most once a second),
so rotating through the file needs no restart.

Tokens are compared in constant time (:func:`hmac.compare_digest`, against
every configured token); a token is never logged, echoed or put in an error
message. A configuration that is set but unusable (empty, a token too short
or with characters outside RFC 6750's token alphabet, an unreadable file) is
an error at start, never an open service.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from starlette.types import ASGIApp, Receive, Scope, Send

from churn_lib import ChurnError

TOKEN_ENV = "CHURN_API_TOKEN"
TOKEN_FILE_ENV = "CHURN_API_TOKEN_FILE"
METRICS_AUTH_ENV = "CHURN_METRICS_AUTH"

#: Shortest accepted token (a guessable token is no protection).
MIN_TOKEN_CHARS = 16
#: An Authorization header longer than this is refused without comparing (no token is this long).
MAX_HEADER_BYTES = 4096
#: RFC 6750's b64token: letters, digits and ``-._~+/``, optionally ``=`` padding.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
#: Paths open without a token: liveness for load balancers and orchestrators.
OPEN_PATHS = frozenset({"/health"})
REALM = "churn-mlops"


def _parse(text: str, where: str) -> tuple[bytes, ...]:
    tokens = []
    for line in text.splitlines():
        line = line.split("#", 1)[0] if where != TOKEN_ENV else line
        tokens.extend(t for t in re.split(r"[\s,]+", line) if t)
    if not tokens:
        raise ChurnError(f"{where} is set but holds no token; set a token of at least {MIN_TOKEN_CHARS} "
                         f"characters, or unset {where} to serve without authentication")
    for k, token in enumerate(tokens, 1):
        if len(token) < MIN_TOKEN_CHARS or len(token) > MAX_HEADER_BYTES // 2 or not _TOKEN.fullmatch(token):
            raise ChurnError(f"token {k} of {where} is not usable: a token is {MIN_TOKEN_CHARS} to "
                             f"{MAX_HEADER_BYTES // 2} characters of letters, digits and -._~+/ (e.g. "
                             "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return tuple(t.encode("ascii") for t in tokens)


@dataclass
class Tokens:
    """The accepted tokens, from the environment or a file (re-read when it changes)."""

    path: Path | None = None
    fixed: tuple[bytes, ...] = ()
    check_every: float = 1.0
    _values: tuple[bytes, ...] = ()
    _stamp: tuple[int, int] | None = None
    _checked: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Tokens | None":
        """The configured tokens, or None when authentication is off (neither variable set).

        Raises
        ------
        ChurnError
            A variable is set but unusable (empty, a bad token, a file that cannot be read).
        """
        env = os.environ if env is None else env
        fixed = _parse(env[TOKEN_ENV], TOKEN_ENV) if TOKEN_ENV in env else ()
        path = env.get(TOKEN_FILE_ENV)
        if path is not None and not path.strip():
            raise ChurnError(f"{TOKEN_FILE_ENV} is set but empty; name a file of tokens, one per line")
        if not fixed and path is None:
            return None
        tokens = cls(path=Path(path).expanduser().absolute() if path else None, fixed=fixed)
        tokens._reload(strict=True)
        return tokens

    def _reload(self, strict: bool) -> None:
        if self.path is None:
            self._values = self.fixed
            return
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return
            text = self.path.read_text(encoding="utf-8")
            self._values = self.fixed + _parse(text, f"{TOKEN_FILE_ENV} ({self.path})")
            self._stamp = stamp
        except (OSError, UnicodeDecodeError, ChurnError) as exc:
            if strict:
                if isinstance(exc, ChurnError):
                    raise
                raise ChurnError(f"cannot read the token file {self.path} ({TOKEN_FILE_ENV}): "
                                 f"{getattr(exc, 'strerror', None) or exc}") from None
            # a file being rewritten or broken later: keep the tokens last read (fail closed if none)

    def current(self) -> tuple[bytes, ...]:
        now = time.monotonic()
        if self.path is not None and now - self._checked >= self.check_every:
            with self._lock:
                if now - self._checked >= self.check_every:
                    self._reload(strict=False)
                    self._checked = now
        return self._values

    def accepts(self, header: bytes | None) -> bool:
        """Whether an ``Authorization`` header value carries one of the tokens (constant time per token)."""
        if not header or len(header) > MAX_HEADER_BYTES:
            return False
        scheme, _, credentials = header.strip().partition(b" ")
        credentials = credentials.strip()
        if scheme.lower() != b"bearer" or not credentials:
            return False
        ok = False
        for token in self.current():
            ok |= hmac.compare_digest(credentials, token)
        return ok


def challenge(error: bool) -> bytes:
    """The ``WWW-Authenticate`` value of a 401 (RFC 6750: ``invalid_token`` when a token was sent)."""
    value = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if error else "")
    return value.encode()


def unauthorized_message(sent: bool) -> str:
    if sent:
        return "the bearer token is missing or not accepted: send Authorization: Bearer <token>"
    return "authentication required: send Authorization: Bearer <token>"


class BearerAuth:
    """Pure ASGI middleware: 401 for a request without an accepted token, except on the open paths."""

    def __init__(self, app: ASGIApp, *, tokens: Tokens, open_paths: frozenset[str] = OPEN_PATHS) -> None:
        self.app = app
        self.tokens = tokens
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        header = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                header = value
                break
        if self.tokens.accepts(header):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"detail": unauthorized_message(header is not None)}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", challenge(header is not None))]})
        await send({"type": "http.response.body", "body": body})


def open_paths(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """The paths that need no token: ``/health``, and ``/metrics`` unless ``CHURN_METRICS_AUTH=1``."""
    env = os.environ if env is None else env
    value = env.get(METRICS_AUTH_ENV, "").strip().lower()
    if value not in ("", "0", "1", "false", "true", "no", "yes"):
        raise ChurnError(f"{METRICS_AUTH_ENV}={env[METRICS_AUTH_ENV]!r}: use 1 (metrics need a token) or 0")
    return OPEN_PATHS if value in ("1", "true", "yes") else OPEN_PATHS | {"/metrics"}


def document(doc: dict, open_: frozenset[str]) -> None:
    """Declare the bearer scheme in an OpenAPI document: every operation off the open paths needs it, 401 otherwise."""
    doc.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
        "type": "http", "scheme": "bearer",
        "description": f"Authorization: Bearer <token>; {', '.join(sorted(open_))} need none"}
    problem = {"description": "no accepted bearer token",
               "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
               "content": {"application/json": {"schema": {
                   "type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}}}}}
    for path, ops in doc.get("paths", {}).items():
        if path in open_:
            continue
        for op in ops.values():
            if isinstance(op, dict) and "responses" in op:
                op["security"] = [{"bearer": []}]
                op["responses"].setdefault("401", problem)


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` resolves to is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%", 1)[0]).is_loopback for info in infos)


def check_exposure(host: str, tokens: Tokens | None, insecure: bool) -> None:
    """Refuse to listen beyond this machine without a token, unless told to (``--insecure``)."""
    if tokens is None and not insecure and not is_loopback(host):
        raise ChurnError(f"--host {host} is reachable from other machines and no token is set: set "
                         f"{TOKEN_ENV} or pass --token-file FILE (or --insecure to serve without "
                         "authentication anyway)")
