"""Base64 `[]byte` fields (Secret data, ConfigMap binaryData) read the way upstream reads them.

Upstream decodes these fields to bytes when it decodes the request (encoding/json's []byte:
Go's padded standard base64, which skips every "\\r" and "\\n", so text wrapped over lines, as a
YAML block scalar gives it, is accepted) and writes them back re-encoded, unwrapped. Pure
functions: defaulting stores the canonical form, validation rejects what does not decode.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

_LINE_BREAKS = str.maketrans("", "", "\r\n")


def decode(value: Any) -> bytes | None:
    """The bytes a field's text stands for, or None when upstream's decoder would refuse it."""
    try:
        return base64.b64decode(str(value).translate(_LINE_BREAKS), validate=True)
    except (binascii.Error, ValueError):
        return None


def canonical(value: Any) -> Any:
    """The text upstream returns for a field sent as `value` (decoded, then encoded again);
    `value` itself when it is not text that decodes, for validation to report."""
    if not isinstance(value, str):
        return value
    decoded = decode(value)
    if decoded is None:
        return value
    return base64.b64encode(decoded).decode("ascii")


def canonicalize_map(obj: dict, field: str) -> None:
    """Rewrites each value of obj[field] (a map of base64 text) in its canonical form."""
    values = obj.get(field)
    if isinstance(values, dict):
        for key, value in values.items():
            values[key] = canonical(value)
