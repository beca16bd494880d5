"""Resource quantities ("500m", "1Gi", "2e3") as upstream's `resource.Quantity` reads and prints them.

Values are exact `fractions.Fraction`s so comparisons (requests <= limits) never round.
`canonical_quantity` reproduces upstream's serialised form, which is what kubectl shows
after a round trip through the API server: decimal values use the largest SI suffix that
keeps an integer mantissa ("0.5" -> "500m", "1000m" -> "1", "1500" -> "1500"), binary
values use the largest power-of-1024 suffix that divides them exactly ("1536Mi").
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

# Upstream's ErrFormatWrong text: clients see it verbatim.
QUANTITY_FORMAT_ERROR = (
    "quantities must match the regular expression "
    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
SUFFIX_ERROR = "unable to parse quantity's suffix"

_SYNTAX = re.compile(r"^([+-]?)([0-9]*\.?[0-9]*)([eEinumkKMGTP]*[-+]?[0-9]*)$")

_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_BY_EXPONENT = {exponent: suffix for suffix, exponent in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_EXPONENT = {exponent: suffix for suffix, exponent in _BINARY_SUFFIXES.items()}
_EXPONENT_SUFFIX = re.compile(r"^[eE]([-+]?[0-9]+)$")

# Upstream keeps at most nanosecond-like precision: anything finer is rounded up to 1n.
_NANO = Fraction(1, 10**9)


@functools.lru_cache(maxsize=4096, typed=True)
def _parse(text: str | int | float) -> tuple[Fraction, str]:
    """Value and format ("DecimalSI", "BinarySI" or "DecimalExponent"). Cached: the same
    few quantities ("100m", "64Mi") come back on every pod write."""
    if isinstance(text, bool):
        raise ValueError(QUANTITY_FORMAT_ERROR)
    if isinstance(text, int):
        return Fraction(text), "DecimalSI"
    if isinstance(text, float):
        # JSON numbers: upstream reads them through their decimal text.
        text = repr(text)
    if not isinstance(text, str):
        raise ValueError(QUANTITY_FORMAT_ERROR)
    match = _SYNTAX.match(text)
    if not text or not match:
        raise ValueError(QUANTITY_FORMAT_ERROR)
    sign, number, suffix = match.groups()
    if not any(ch.isdigit() for ch in number):
        raise ValueError(QUANTITY_FORMAT_ERROR)
    value = Fraction(number if not number.endswith(".") else number + "0")
    if sign == "-":
        value = -value
    if suffix in _BINARY_SUFFIXES:
        value *= 2 ** _BINARY_SUFFIXES[suffix]
        fmt = "BinarySI"
    elif suffix in _DECIMAL_SUFFIXES:
        value *= Fraction(10) ** _DECIMAL_SUFFIXES[suffix]
        fmt = "DecimalSI"
    else:
        exponent = _EXPONENT_SUFFIX.match(suffix)
        if not exponent:
            raise ValueError(SUFFIX_ERROR)
        value *= Fraction(10) ** int(exponent.group(1))
        fmt = "DecimalExponent"
    return _round_up(value, _NANO), fmt


def _round_up(value: Fraction, step: Fraction) -> Fraction:
    """Round away from zero to a multiple of `step` (upstream's RoundUp)."""
    units = value / step
    if units.denominator == 1:
        return value
    whole = -((-abs(units.numerator)) // units.denominator)  # ceil of |units|
    return (whole if value > 0 else -whole) * step


def parse_quantity(text: str | int | float) -> Fraction:
    """The exact value of a quantity; ValueError with upstream's message on bad syntax."""
    return _parse(text)[0]


def is_valid_quantity(text: object) -> bool:
    try:
        _parse(text)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=4096, typed=True)
def round_up_milli(text: str | int | float) -> str:
    """Canonical form after rounding up to millis, as upstream's SetDefaults_ResourceList does."""
    value, fmt = _parse(text)
    return _format(_round_up(value, Fraction(1, 1000)), fmt)


@functools.lru_cache(maxsize=4096, typed=True)
def canonical_quantity(text: str | int | float) -> str:
    value, fmt = _parse(text)
    return _format(value, fmt)


def format_quantity(value: Fraction | int, binary: bool = False) -> str:
    """Canonical text for a computed value (e.g. summed requests)."""
    return _format(Fraction(value), "BinarySI" if binary else "DecimalSI")


def _format(value: Fraction, fmt: str) -> str:
    if value == 0:
        return "0"
    if fmt == "BinarySI":
        # Small or fractional binary values print as decimal so nothing is rounded away.
        if -1024 < value < 1024 or value.denominator != 1:
            fmt = "DecimalSI"
        else:
            return _format_binary(int(value))
    mantissa, exponent = _decimal_mantissa(value)
    if fmt == "DecimalExponent":
        return f"{mantissa}" + (f"e{exponent}" if exponent else "")
    if exponent in _DECIMAL_BY_EXPONENT:
        return f"{mantissa}{_DECIMAL_BY_EXPONENT[exponent]}"
    # Beyond exa: keep the largest suffix and grow the mantissa.
    return f"{mantissa * 10 ** (exponent - 18)}E"


def _decimal_mantissa(value: Fraction) -> tuple[int, int]:
    """Integer mantissa and an exponent that is a multiple of 3, mantissa as small as possible."""
    exponent = 0
    while value.denominator != 1:
        value *= 10
        exponent -= 1
    mantissa = value.numerator
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    remainder = exponent % 3  # Python's modulo is non-negative: pad the mantissa down to a multiple of 3
    mantissa *= 10 ** remainder
    exponent -= remainder
    return mantissa, exponent


def _format_binary(value: int) -> str:
    exponent = 0
    while value % 1024 == 0 and exponent < 60:
        value //= 1024
        exponent += 10
    return f"{value}{_BINARY_BY_EXPONENT.get(exponent, '')}"
