"""API errors: one exception per upstream Status reason, turned into a Status body in one place.

Messages follow upstream's wording (apimachinery `pkg/api/errors`), because kubectl prints
them verbatim as `Error from server (<reason>): <message>`.
"""

from __future__ import annotations

from typing import Any

import orjson


def _qualified(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


class ApiError(Exception):
    code = 500
    reason = "InternalError"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        return status_body("Failure", message=self.message, reason=self.reason, details=self.details, code=self.code)


# Upstream's meta/v1 Status, StatusDetails and StatusCause field orders (their Go struct order,
# which encoding/json keeps); every field but metadata is omitempty.
_DETAILS_FIELDS = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")
_CAUSE_FIELDS = ("reason", "message", "field")


def status_body(status: str, *, message: str = "", reason: str = "", details: dict[str, Any] | None = None,
                code: int = 0) -> dict[str, Any]:
    """A meta/v1 Status as upstream writes it: fields in the Go struct's order, empty ones left
    out (omitempty). `details` None leaves details out; a dict, even an empty one, is sent (upstream's
    details is a pointer: a non-nil empty StatusDetails is written as {}). Every Status the server
    sends, failure or success, is built here."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}}
    if status:
        body["status"] = status
    if message:
        body["message"] = message
    if reason:
        body["reason"] = reason
    if details is not None:
        body["details"] = _status_details(details)
    if code:
        body["code"] = code
    return body


# json.Encoder escapes these inside strings (HTML-safe by default; U+2028/2029 always). In JSON
# text they can only occur inside strings, so replacing the bytes is exact.
_GO_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"),
               ("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))


def encode_status(body: dict[str, Any]) -> bytes:
    """A Status body's bytes as upstream's JSON serializer (a json.Encoder) writes them: Go's
    escapes in strings, then a newline."""
    encoded = orjson.dumps(body, option=orjson.OPT_APPEND_NEWLINE)
    for raw, escaped in _GO_ESCAPES:
        if raw in encoded:
            encoded = encoded.replace(raw, escaped)
    return encoded


def _status_details(details: dict[str, Any]) -> dict[str, Any]:
    ordered: dict[str, Any] = {}
    for field in _DETAILS_FIELDS:
        value = details.get(field)
        if not value:
            continue
        if field == "causes":
            value = [{key: cause[key] for key in _CAUSE_FIELDS if cause.get(key)} for cause in value]
        ordered[field] = value
    return ordered


class BadRequest(ApiError):
    code = 400
    reason = "BadRequest"


class Unauthorized(ApiError):
    code = 401
    reason = "Unauthorized"


class Forbidden(ApiError):
    code = 403
    reason = "Forbidden"


class NotFound(ApiError):
    code = 404
    reason = "NotFound"

    @classmethod
    def of(cls, group: str, plural: str, name: str) -> "NotFound":
        return cls(f'{_qualified(group, plural)} "{name}" not found',
                   details={"name": name, "group": group, "kind": plural})


class MethodNotAllowed(ApiError):
    code = 405
    reason = "MethodNotAllowed"


class NotAcceptable(ApiError):
    code = 406
    reason = "NotAcceptable"


class AlreadyExists(ApiError):
    code = 409
    reason = "AlreadyExists"

    @classmethod
    def of(cls, group: str, plural: str, name: str) -> "AlreadyExists":
        return cls(f'{_qualified(group, plural)} "{name}" already exists',
                   details={"name": name, "group": group, "kind": plural})


class Conflict(ApiError):
    code = 409
    reason = "Conflict"

    @classmethod
    def of(cls, group: str, plural: str, name: str, why: str) -> "Conflict":
        return cls(f'Operation cannot be fulfilled on {_qualified(group, plural)} "{name}": {why}',
                   details={"name": name, "group": group, "kind": plural})


OBJECT_MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


class Gone(ApiError):
    code = 410
    reason = "Expired"  # upstream answers compacted reads with reason Expired and code 410


class UnsupportedMediaType(ApiError):
    code = 415
    reason = "UnsupportedMediaType"


class Invalid(ApiError):
    """422 with field causes. `causes` are dicts {reason, message, field}."""

    code = 422
    reason = "Invalid"

    def __init__(self, kind: str, name: str, causes: list[dict[str, str]], group: str = ""):
        self.causes = causes
        summary = ", ".join(_cause_text(c) for c in causes)
        if len(causes) > 1:
            summary = "[" + summary + "]"
        details = {"name": name, "group": group, "kind": kind, "causes": causes}
        qualified = f"{kind}.{group}" if group else kind
        super().__init__(f'{qualified} "{name}" is invalid: {summary}', details=details)


def _cause_text(cause: dict[str, str]) -> str:
    return f"{cause['field']}: {cause['message']}" if cause.get("field") else cause["message"]


class TooManyRequests(ApiError):
    code = 429
    reason = "TooManyRequests"


class InternalError(ApiError):
    code = 500
    reason = "InternalError"

    @classmethod
    def of(cls, cause: str) -> "InternalError":
        """Upstream's NewInternalError: the cause is also the one StatusCause's message."""
        return cls(f"Internal error occurred: {cause}", details={"causes": [{"message": cause}]})


class ServiceUnavailable(ApiError):
    code = 503
    reason = "ServiceUnavailable"


class Timeout(ApiError):
    code = 504
    reason = "Timeout"


# Field error helpers, in upstream's `field.Error` shapes (reason = ErrorType string).

def required(path: str, detail: str = "") -> dict[str, str]:
    return {"reason": "FieldValueRequired", "message": "Required value" + (f": {detail}" if detail else ""), "field": path}


def invalid(path: str, value: Any, detail: str) -> dict[str, str]:
    return {"reason": "FieldValueInvalid", "message": f"Invalid value: {_render(value)}: {detail}", "field": path}


def not_supported(path: str, value: Any, allowed: list[str]) -> dict[str, str]:
    quoted = ", ".join(f'"{a}"' for a in allowed)
    return {"reason": "FieldValueNotSupported", "message": f"Unsupported value: {_render(value)}: supported values: {quoted}", "field": path}


def duplicate(path: str, value: Any) -> dict[str, str]:
    return {"reason": "FieldValueDuplicate", "message": f"Duplicate value: {_render(value)}", "field": path}


def forbidden(path: str, detail: str) -> dict[str, str]:
    return {"reason": "FieldValueForbidden", "message": f"Forbidden: {detail}", "field": path}


def too_long(path: str, value: Any, limit: int) -> dict[str, str]:
    return {"reason": "FieldValueTooLong", "message": f"Too long: must have at most {limit} bytes", "field": path}


def _render(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        import json
        return json.dumps(value, separators=(",", ":"))
    return str(value)
