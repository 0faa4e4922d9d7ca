"""Request bodies parsed and validated in one pass by pydantic.

FastAPI's ``Body()`` parses JSON with ``json.loads`` and then validates the
Python objects; pydantic's ``validate_json`` does both in one pass in Rust,
which is about a sixth of the app's time on ``/predict``. :class:`JSONBody`
is a dependency giving the route the validated model, raising FastAPI's
``RequestValidationError`` (so the same 422 handler answers) and declaring the
body in OpenAPI. Like FastAPI, it accepts only ``application/json`` (or
``+json``) bodies: a ``text/plain`` one would skip a browser's CORS preflight.
Undecodable bytes, deep nesting, an empty body: all are 422 on ``body``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """Replace ``{"$ref": "#/$defs/X"}`` by X's schema: in OpenAPI a ref is read from the document root."""
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline(defs[ref.rsplit("/", 1)[1]], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class JSONBody:
    """A dependency returning the body validated as ``annotation``.

    Parameters
    ----------
    annotation : type
        A pydantic model or a type such as ``Annotated[list[Model], Field(max_length=...)]``.
    examples : dict
        OpenAPI examples (name -> {"summary", "value"}).
    description : str
    """

    def __init__(self, annotation: Any, *, examples: dict[str, Any], description: str) -> None:
        self.adapter = TypeAdapter(annotation)
        schema = self.adapter.json_schema()
        schema = _inline(schema, schema.get("$defs", {}))
        self.openapi_extra = {"requestBody": {
            "required": True, "description": description,
            "content": {"application/json": {"schema": schema, "examples": examples}}}}

    async def __call__(self, request: Request) -> Any:
        if not _is_json(request.headers.get("content-type", "")):
            raise RequestValidationError([{"type": "content_type", "loc": ("body",), "input": None,
                                           "msg": "must be sent with Content-Type: application/json"}])
        try:
            return self.adapter.validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                          for e in exc.errors(include_url=False)]) from None
