"""Refuse oversized request bodies.

A request whose ``Content-Length`` exceeds its route's limit gets 413 at once,
before its body is read, with a JSON message giving the limit. A body sent
without a length (chunked) is counted while the route reads it; past the limit
reading raises ``HTTPException(413)``, which serve.errors answers with the
same message. Requests within their declared length cost one header scan.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def too_large_message(path: str, limit: int) -> str:
    return f"request body larger than {limit} bytes, the limit of {path}"


class ContentLengthLimit:
    """Pure ASGI middleware: 413 for a body larger than the path's limit (declared or streamed)."""

    def __init__(self, app: ASGIApp, *, default: int, per_path: dict[str, int]) -> None:
        self.app = app
        self.default = default
        self.per_path = per_path

    def limit(self, path: str) -> int:
        return self.per_path.get(path.rstrip("/") or "/", self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope["path"])
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1  # the server refuses a malformed length before the app sees it
                if declared > limit:
                    await _too_large(send, scope["path"], limit)
                    return
                # the server delivers exactly the declared length: nothing to count
                await self.app(scope, receive, send)
                return
        await self.app(scope, _counting(receive, limit), send)


def _counting(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413)  # answered by serve.errors.http_error with the limit
        return message

    return counted


async def _too_large(send: Send, path: str, limit: int) -> None:
    body = json.dumps({"detail": too_large_message(path, limit)}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
