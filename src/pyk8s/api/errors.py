"""API errors: one exception per upstream Status reason, turned into a Status body in one place.

Messages follow upstream's wording (apimachinery `pkg/api/errors`), because kubectl prints
them verbatim as `Error from server (<reason>): <message>`.
"""

from __future__ import annotations

from typing import Any


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
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details:
            body["details"] = self.details
        body["code"] = self.code
        return body


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
                   details={"name": name, "group": group, "kind": plural} if group else {"name": name, "kind": plural})


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
        details = {"name": name, "kind": plural}
        if group:
            details["group"] = group
        return cls(f'{_qualified(group, plural)} "{name}" already exists', details=details)


class Conflict(ApiError):
    code = 409
    reason = "Conflict"

    @classmethod
    def of(cls, group: str, plural: str, name: str, why: str) -> "Conflict":
        details = {"name": name, "kind": plural}
        if group:
            details["group"] = group
        return cls(f'Operation cannot be fulfilled on {_qualified(group, plural)} "{name}": {why}',
                   details=details)


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
        details: dict[str, Any] = {"name": name, "kind": kind}
        if group:
            details["group"] = group
        details["causes"] = causes
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
    return {"reason": "FieldValueTooLong", "message": f"Too long: may not be more than {limit} bytes", "field": path}


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
