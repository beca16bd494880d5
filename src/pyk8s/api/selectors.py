"""Label and field selectors: parse, validate, print and match.

Pure library (no I/O). The API server parses `labelSelector` / `fieldSelector` query
parameters with `parse_label_selector` / `parse_field_selector`, checks field names with
`validate_field_selector`, and filters objects with `.matches(...)`. Controllers turn a
spec's `metav1.LabelSelector` (`spec.selector` of Deployments, ReplicaSets, Jobs, ...) into
a matcher with `label_selector_from_spec`, and a plain map selector (Services,
ReplicationControllers) with `label_selector_from_set`.

Behaviour, error wording and canonical string forms follow upstream apimachinery
(`pkg/labels/selector.go`, `pkg/fields/selector.go`, `pkg/apis/meta/v1/helpers.go`), because
kubectl users see these messages verbatim.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from pyk8s.api import errors
from pyk8s.api.validation import label_value_errors, qualified_name_errors

__all__ = [
    "LabelRequirement", "LabelSelector", "parse_label_selector", "label_selector_from_spec",
    "label_selector_from_set", "EVERYTHING", "NOTHING",
    "FieldRequirement", "FieldSelector", "parse_field_selector", "validate_field_selector",
    "object_field", "object_fields", "escape_field_value", "qualified_name_errors", "label_value_errors",
]

# Label keys and values follow the same rules as everywhere else (validation.py).


def _go_quote(text: str) -> str:
    """Go's %q for the strings we quote in messages (ASCII-safe, escapes quotes and controls)."""
    out = ['"']
    for ch in text:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _field_invalid(path: str, value: Any, detail: str) -> str:
    """Text of upstream's `field.Invalid(path, value, detail).Error()`.

    A nil field path prints as `<nil>`; the label parser validates keys with one, so its
    messages really do read `<nil>: Invalid value: ...`.
    """
    if isinstance(value, str):
        rendered = _go_quote(value)
    else:
        # Go marshals a nil []string as null; every empty values list reaches it as nil.
        rendered = json.dumps(value or None, separators=(",", ":"))
    return f"{path}: Invalid value: {rendered}: {detail}"


def _aggregate(messages: list[str]) -> str:
    """Upstream `utilerrors.Aggregate.Error()`: one message bare, several deduplicated in []."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# --------------------------------------------------------------------------------------
# Label selectors
# --------------------------------------------------------------------------------------

# Operators as upstream's `selection.Operator` strings (they appear in error messages).
OP_EQUALS = "="
OP_DOUBLE_EQUALS = "=="
OP_NOT_EQUALS = "!="
OP_IN = "in"
OP_NOT_IN = "notin"
OP_EXISTS = "exists"
OP_DOES_NOT_EXIST = "!"
OP_GREATER_THAN = "gt"
OP_LESS_THAN = "lt"

_BINARY_OPERATORS = (OP_IN, OP_NOT_IN, OP_EQUALS, OP_DOUBLE_EQUALS, OP_NOT_EQUALS, OP_GREATER_THAN, OP_LESS_THAN)
_UNARY_OPERATORS = (OP_EXISTS, OP_DOES_NOT_EXIST)
_ALL_OPERATORS = _BINARY_OPERATORS + _UNARY_OPERATORS

_GO_INT64_RE = re.compile(r"[+-]?[0-9]+")


def _parse_int64(text: str) -> int | None:
    if not _GO_INT64_RE.fullmatch(text):
        return None
    number = int(text)
    return number if -(2 ** 63) <= number < 2 ** 63 else None


class LabelRequirement(NamedTuple):
    """One term of a label selector: `key <operator> values`."""

    key: str
    operator: str
    values: tuple[str, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        operator = self.operator
        if operator in (OP_EQUALS, OP_DOUBLE_EQUALS, OP_IN):
            return self.key in labels and labels[self.key] in self.values
        if operator in (OP_NOT_EQUALS, OP_NOT_IN):
            return self.key not in labels or labels[self.key] not in self.values
        if operator == OP_EXISTS:
            return self.key in labels
        if operator == OP_DOES_NOT_EXIST:
            return self.key not in labels
        if operator in (OP_GREATER_THAN, OP_LESS_THAN):
            if self.key not in labels or len(self.values) != 1:
                return False
            actual = _parse_int64(labels[self.key])
            bound = _parse_int64(self.values[0])
            if actual is None or bound is None:
                return False
            return actual > bound if operator == OP_GREATER_THAN else actual < bound
        return False

    def __str__(self) -> str:
        operator = self.operator
        prefix = "!" if operator == OP_DOES_NOT_EXIST else ""
        if operator in _UNARY_OPERATORS:
            return prefix + self.key
        symbol = {OP_IN: " in ", OP_NOT_IN: " notin ", OP_GREATER_THAN: ">", OP_LESS_THAN: "<"}.get(operator, operator)
        # Upstream prints several values sorted, without reordering the stored ones.
        values = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if operator in (OP_IN, OP_NOT_IN):
            values = "(" + values + ")"
        return self.key + symbol + values


def _compile_requirement(requirement: LabelRequirement) -> Callable[[Mapping[str, str]], bool]:
    """A closure specialised to one requirement: matching is the hot path (every object of
    every list/watch with a selector, every informer lookup), and this halves its cost."""
    key, operator, values = requirement
    # A missing label reads as None, which is never one of the (string) values.
    if operator in (OP_EQUALS, OP_DOUBLE_EQUALS) and len(values) == 1:
        wanted = values[0]
        return lambda labels: labels.get(key) == wanted
    if operator == OP_NOT_EQUALS and len(values) == 1:
        unwanted = values[0]
        return lambda labels: labels.get(key) != unwanted
    if operator == OP_IN:
        allowed = frozenset(values)
        return lambda labels: labels.get(key) in allowed
    if operator == OP_NOT_IN:
        excluded = frozenset(values)
        return lambda labels: labels.get(key) not in excluded
    if operator == OP_EXISTS:
        return lambda labels: key in labels
    if operator == OP_DOES_NOT_EXIST:
        return lambda labels: key not in labels
    return requirement.matches


def _new_requirement(key: str, operator: str, values: list[str], path: str | None) -> LabelRequirement:
    """Upstream `labels.NewRequirement`: validates and raises BadRequest with its aggregate text.

    `path` is the field path prefix (None prints as upstream's nil path would, for the key).
    """
    problems = []
    key_path = "key" if path is None else f"{path}.key"
    values_path = "values" if path is None else f"{path}.values"
    key_errors = qualified_name_errors(key)
    if key_errors:
        problems.append(_field_invalid(key_path, key, "; ".join(key_errors)))
    if operator in (OP_IN, OP_NOT_IN):
        if not values:
            problems.append(_field_invalid(values_path, values, "for 'in', 'notin' operators, values set can't be empty"))
    elif operator in (OP_EQUALS, OP_DOUBLE_EQUALS, OP_NOT_EQUALS):
        if len(values) != 1:
            problems.append(_field_invalid(values_path, values, "exact-match compatibility requires one single value"))
    elif operator in _UNARY_OPERATORS:
        if values:
            problems.append(_field_invalid(values_path, values, "values set must be empty for exists and does not exist"))
    elif operator in (OP_GREATER_THAN, OP_LESS_THAN):
        if len(values) != 1:
            problems.append(_field_invalid(values_path, values, "for 'Gt', 'Lt' operators, exactly one value is required"))
        for index, value in enumerate(values):
            if _parse_int64(value) is None:
                problems.append(_field_invalid(f"{values_path}[{index}]", value,
                                               "for 'Gt', 'Lt' operators, the value must be an integer"))
    else:
        allowed = ", ".join(_go_quote(op) for op in _ALL_OPERATORS)
        problems.append(f"{'operator' if path is None else path + '.operator'}: Unsupported value: "
                        f"{_go_quote(operator)}: supported values: {allowed}")
    for index, value in enumerate(values):
        value_errors = label_value_errors(value)
        if value_errors:
            problems.append(_field_invalid(f"{values_path}[{index}][{key}]", value, "; ".join(value_errors)))
    if problems:
        raise _SelectorSyntaxError(_aggregate(problems))
    return LabelRequirement(key, operator, tuple(values))


class _SelectorSyntaxError(Exception):
    """Internal: carries upstream's error text up to the public entry point."""


class LabelSelector:
    """A parsed label selector: an AND of requirements, sorted by key like upstream.

    Immutable. Three shapes exist, as upstream: a selector with requirements; the
    "everything" selector (no requirements, `empty()` is True, matches all); and the
    "nothing" selector (what a nil `metav1.LabelSelector` means: matches no object,
    `empty()` is False, prints as "").
    """

    __slots__ = ("_requirements", "_selects_nothing", "_string", "_matchers")

    def __init__(self, requirements: Iterable[LabelRequirement] = (), *, selects_nothing: bool = False):
        # Stable sort by key: upstream sorts "ByKey" so the printed form is deterministic.
        ordered = tuple(sorted(requirements, key=lambda r: r.key))
        object.__setattr__(self, "_requirements", ordered)
        object.__setattr__(self, "_selects_nothing", selects_nothing)
        object.__setattr__(self, "_string", None)
        object.__setattr__(self, "_matchers", tuple(_compile_requirement(r) for r in ordered))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("LabelSelector is immutable")

    @property
    def requirements(self) -> tuple[LabelRequirement, ...]:
        return self._requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self._selects_nothing:
            return False
        if labels is None:
            labels = {}
        for matcher in self._matchers:
            if not matcher(labels):
                return False
        return True

    def empty(self) -> bool:
        """True when the selector does not restrict anything (the "everything" selector)."""
        return not self._selects_nothing and not self._requirements

    def selects_nothing(self) -> bool:
        return self._selects_nothing

    def requires_exact_match(self, key: str) -> str | None:
        """The single value `key` must have for a match, if the selector pins one (upstream
        `RequiresExactMatch`); None otherwise."""
        for requirement in self._requirements:
            if requirement.key == key:
                if requirement.operator in (OP_EQUALS, OP_DOUBLE_EQUALS, OP_IN) and len(requirement.values) == 1:
                    return requirement.values[0]
                return None
        return None

    def __str__(self) -> str:
        if self._string is None:
            object.__setattr__(self, "_string", ",".join(str(r) for r in self._requirements))
        return self._string

    def __repr__(self) -> str:
        if self._selects_nothing:
            return "LabelSelector(<nothing>)"
        return f"LabelSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSelector):
            return NotImplemented
        return (self._selects_nothing, self._requirements) == (other._selects_nothing, other._requirements)

    def __hash__(self) -> int:
        return hash((self._selects_nothing, self._requirements))


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(selects_nothing=True)

# ---- the label selector lexer and parser (upstream's grammar, token for token) ----------

_T_ERROR, _T_END, _T_CLOSE_PAREN, _T_COMMA, _T_NOT, _T_DOUBLE_EQUALS, _T_EQUALS, _T_GREATER, \
    _T_IDENTIFIER, _T_IN, _T_LESS, _T_NOT_EQUALS, _T_NOT_IN, _T_OPEN_PAREN = range(14)

_LITERAL_TOKENS = {
    ")": _T_CLOSE_PAREN, ",": _T_COMMA, "!": _T_NOT, "==": _T_DOUBLE_EQUALS, "=": _T_EQUALS,
    ">": _T_GREATER, "in": _T_IN, "<": _T_LESS, "!=": _T_NOT_EQUALS, "notin": _T_NOT_IN, "(": _T_OPEN_PAREN,
}
_SPECIAL_SYMBOLS = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")


def _lex(text: str) -> list[tuple[int, str]]:
    tokens: list[tuple[int, str]] = []
    position, length = 0, len(text)
    while True:
        while position < length and text[position] in _WHITESPACE:
            position += 1
        if position >= length:
            tokens.append((_T_END, ""))
            return tokens
        if text[position] in _SPECIAL_SYMBOLS:
            # Longest run of special symbols that still forms an operator ("!=", "==", ...).
            end = position + 1
            while end < length and text[end] in _SPECIAL_SYMBOLS and text[position:end + 1] in _LITERAL_TOKENS:
                end += 1
            literal = text[position:end]
            tokens.append((_LITERAL_TOKENS[literal], literal))
            position = end
        else:
            end = position
            while end < length and text[end] not in _SPECIAL_SYMBOLS and text[end] not in _WHITESPACE:
                end += 1
            literal = text[position:end]
            tokens.append((_LITERAL_TOKENS.get(literal, _T_IDENTIFIER), literal))
            position = end


class _LabelParser:
    """Recursive descent over upstream's grammar:

    selector    ::= requirement | requirement "," selector
    requirement ::= ["!"] KEY [ ("in"|"notin") "(" values ")" | ("="|"=="|"!="|">"|"<") VALUE ]

    `in`/`notin` are keywords only where an operator is expected; elsewhere they are plain
    identifiers (so `in in (in)` is a valid selector).
    """

    def __init__(self, text: str):
        self.tokens = _lex(text)
        self.position = 0

    def _peek(self, as_value: bool = True) -> tuple[int, str]:
        token, literal = self.tokens[self.position]
        if as_value and token in (_T_IN, _T_NOT_IN):
            token = _T_IDENTIFIER
        return token, literal

    def _take(self, as_value: bool = True) -> tuple[int, str]:
        token = self._peek(as_value)
        self.position += 1
        return token

    def parse(self) -> list[LabelRequirement]:
        requirements: list[LabelRequirement] = []
        while True:
            token, literal = self._peek()
            if token in (_T_IDENTIFIER, _T_NOT):
                try:
                    requirements.append(self._requirement())
                except _SelectorSyntaxError as problem:
                    raise _SelectorSyntaxError(f"unable to parse requirement: {problem}") from None
                token, literal = self._take()
                if token == _T_END:
                    return requirements
                if token == _T_COMMA:
                    next_token, next_literal = self._peek()
                    if next_token not in (_T_IDENTIFIER, _T_NOT):
                        raise _SelectorSyntaxError(f"found '{next_literal}', expected: identifier after ','")
                    continue
                raise _SelectorSyntaxError(f"found '{literal}', expected: ',' or 'end of string'")
            if token == _T_END:
                return requirements
            raise _SelectorSyntaxError(f"found '{literal}', expected: !, identifier, or 'end of string'")

    def _requirement(self) -> LabelRequirement:
        operator = None
        token, literal = self._take()
        if token == _T_NOT:
            operator = OP_DOES_NOT_EXIST
            token, literal = self._take()
        if token != _T_IDENTIFIER:
            raise _SelectorSyntaxError(f"found '{literal}', expected: identifier")
        key = literal
        key_errors = qualified_name_errors(key)
        if key_errors:
            raise _SelectorSyntaxError(_field_invalid("<nil>", key, "; ".join(key_errors)))
        if operator == OP_DOES_NOT_EXIST or self._peek()[0] in (_T_END, _T_COMMA):
            # "!key" is complete on its own; whatever follows is the caller's problem
            # ("!a=b" fails with "found '=', expected: ',' or 'end of string'", as upstream).
            return _new_requirement(key, operator or OP_EXISTS, [], None)
        operator = self._operator()
        if operator in (OP_IN, OP_NOT_IN):
            values = self._value_set()
        else:
            values = self._exact_value()
        # Upstream collects values in a string set: deduplicated and sorted.
        return _new_requirement(key, operator, sorted(set(values)), None)

    def _operator(self) -> str:
        token, literal = self._take(as_value=False)
        operator = {
            _T_IN: OP_IN, _T_EQUALS: OP_EQUALS, _T_DOUBLE_EQUALS: OP_DOUBLE_EQUALS, _T_GREATER: OP_GREATER_THAN,
            _T_LESS: OP_LESS_THAN, _T_NOT_IN: OP_NOT_IN, _T_NOT_EQUALS: OP_NOT_EQUALS,
        }.get(token)
        if operator is None:
            raise _SelectorSyntaxError(f"found '{literal}', expected: {', '.join(_BINARY_OPERATORS)}")
        return operator

    def _value_set(self) -> list[str]:
        token, literal = self._take()
        if token != _T_OPEN_PAREN:
            raise _SelectorSyntaxError(f"found '{literal}' expected: '('")
        token, literal = self._peek()
        if token in (_T_IDENTIFIER, _T_COMMA):
            values = self._identifier_list()
            self._take()  # the ")" that _identifier_list stopped at
            return values
        if token == _T_CLOSE_PAREN:
            # "()" means the set holding only the empty string, as upstream.
            self._take()
            return [""]
        raise _SelectorSyntaxError(f"found '{literal}', expected: ',', ')' or identifier")

    def _identifier_list(self) -> list[str]:
        values: list[str] = []
        while True:
            token, literal = self._take()
            if token == _T_IDENTIFIER:
                values.append(literal)
                next_token, next_literal = self._peek()
                if next_token == _T_COMMA:
                    continue
                if next_token == _T_CLOSE_PAREN:
                    return values
                raise _SelectorSyntaxError(f"found '{next_literal}', expected: ',' or ')'")
            if token == _T_COMMA:
                # Empty items between commas are empty-string values: "(,a)", "(a,)", "(a,,b)".
                if not values:
                    values.append("")
                next_token, _ = self._peek()
                if next_token == _T_CLOSE_PAREN:
                    values.append("")
                    return values
                if next_token == _T_COMMA:
                    self._take()
                    values.append("")
                continue
            raise _SelectorSyntaxError(f"found '{literal}', expected: ',', or identifier")

    def _exact_value(self) -> list[str]:
        token, _ = self._peek()
        if token in (_T_END, _T_COMMA):
            return [""]
        token, literal = self._take()
        if token == _T_IDENTIFIER:
            return [literal]
        raise _SelectorSyntaxError(f"found '{literal}', expected: identifier")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse the `labelSelector` string syntax (`a=b,c!=d,e in (f,g),h notin (i),j,!k,l>1`).

    An empty or blank string selects everything. Raises `errors.BadRequest` with upstream's
    message on bad input, e.g. "unable to parse requirement: found 'b', expected: in, notin,
    =, ==, !=, gt, lt" for "a b".
    """
    if not text:
        return EVERYTHING
    try:
        requirements = _LabelParser(text).parse()
    except _SelectorSyntaxError as problem:
        raise errors.BadRequest(str(problem)) from None
    return LabelSelector(requirements) if requirements else EVERYTHING


_SPEC_OPERATORS = {"In": OP_IN, "NotIn": OP_NOT_IN, "Exists": OP_EXISTS, "DoesNotExist": OP_DOES_NOT_EXIST}


def label_selector_from_spec(spec: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a `metav1.LabelSelector` object (`{matchLabels, matchExpressions}`).

    Semantics are upstream's `LabelSelectorAsSelector`, and they differ on purpose:
      - `None` (the field is absent) selects NOTHING;
      - `{}` (present but with no terms) selects EVERYTHING.
    matchLabels and matchExpressions are ANDed. Raises `errors.BadRequest` on an unknown
    operator (`"Foo" is not a valid label selector operator`) or invalid keys/values.
    """
    if spec is None:
        return NOTHING
    match_labels = spec.get("matchLabels") or {}
    match_expressions = spec.get("matchExpressions") or []
    if not match_labels and not match_expressions:
        return EVERYTHING
    requirements = []
    try:
        for key, value in match_labels.items():
            requirements.append(_new_requirement(key, OP_EQUALS, [value if value is not None else ""], None))
        for expression in match_expressions:
            operator_name = expression.get("operator")
            operator = _SPEC_OPERATORS.get(operator_name)
            if operator is None:
                raise _SelectorSyntaxError(f"{_go_quote(operator_name or '')} is not a valid label selector operator")
            requirements.append(_new_requirement(expression.get("key") or "", operator,
                                                 list(expression.get("values") or []), None))
    except _SelectorSyntaxError as problem:
        raise errors.BadRequest(str(problem)) from None
    return LabelSelector(requirements)


def label_selector_from_set(labels: Mapping[str, str] | None) -> LabelSelector:
    """Selector matching exactly the given map (upstream `SelectorFromSet`), as used by the map
    selectors of Services and ReplicationControllers. None or {} selects everything, as
    upstream; callers for which an empty map means "select nothing" (Service endpoints)
    must check that themselves. Not validated, like upstream's `SelectorFromValidatedSet`."""
    if not labels:
        return EVERYTHING
    return LabelSelector(LabelRequirement(key, OP_EQUALS, (value,)) for key, value in labels.items())


# --------------------------------------------------------------------------------------
# Field selectors
# --------------------------------------------------------------------------------------

class FieldRequirement(NamedTuple):
    """One term of a field selector. `operator` is "=" (also for "==") or "!="."""

    field: str
    operator: str
    value: str

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{escape_field_value(self.value)}"


def escape_field_value(value: str) -> str:
    """Upstream `fields.EscapeValue`: backslash-escape `\\`, `,` and `=` inside values."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


class FieldSelector:
    """A parsed field selector: an AND of `field=value` / `field!=value` terms."""

    __slots__ = ("requirements",)

    def __init__(self, requirements: Iterable[FieldRequirement] = ()):
        self.requirements: list[FieldRequirement] = list(requirements)

    def matches(self, fields: Callable[[str], str | None] | Mapping[str, str]) -> bool:
        """`fields` maps a selector field name to the object's string value: a dict (missing
        means "") or a function (called only for the fields this selector names)."""
        get = fields.get if isinstance(fields, Mapping) else fields
        for requirement in self.requirements:
            actual = get(requirement.field)
            if actual is None:
                actual = ""
            if (actual == requirement.value) != (requirement.operator == "="):
                return False
        return True

    def empty(self) -> bool:
        return not self.requirements

    def requires_exact_match(self, field: str) -> str | None:
        for requirement in self.requirements:
            if requirement.field == field and requirement.operator == "=":
                return requirement.value
        return None

    def fields(self) -> list[str]:
        return [requirement.field for requirement in self.requirements]

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSelector):
            return NotImplemented
        return self.requirements == other.requirements


def _split_field_terms(text: str) -> list[str]:
    """Split on commas, except backslash-escaped ones (the backslash is kept for unescaping)."""
    terms, start, escaped = [], 0, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return terms


# Checked in this order at each position so "==" never leaves a "=" on the value.
_FIELD_OPERATORS = ("!=", "==", "=")


def _split_field_term(term: str) -> tuple[str, str, str] | None:
    for index in range(len(term)):
        for operator in _FIELD_OPERATORS:
            if term.startswith(operator, index):
                return term[:index], operator, term[index + len(operator):]
    return None


def _unescape_field_value(value: str) -> str:
    if "\\" not in value and "," not in value and "=" not in value:
        return value
    out, escaped = [], False
    for char in value:
        if escaped:
            if char not in "\\,=":
                raise _SelectorSyntaxError(f"invalid field selector: invalid escape sequence: \\{char}")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            # Upstream formats the rune with %v, which prints its code point ("61" for "=").
            raise _SelectorSyntaxError(f"invalid field selector: unescaped character in value: {ord(char)}")
        else:
            out.append(char)
    if escaped:
        raise _SelectorSyntaxError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_field_selector(text: str | None) -> FieldSelector:
    """Parse the `fieldSelector` syntax: comma-separated `field=value`, `field==value`,
    `field!=value`; values may escape `\\,`, `\\=` and `\\\\`. Empty selects everything.
    Terms come out sorted by their raw text, as upstream sorts them. Raises BadRequest."""
    if not text:
        return FieldSelector()
    requirements = []
    try:
        for term in sorted(_split_field_terms(text)):
            if not term:
                continue
            split = _split_field_term(term)
            if split is None:
                raise _SelectorSyntaxError(f"invalid selector: '{text}'; can't understand '{term}'")
            field, operator, raw_value = split
            requirements.append(FieldRequirement(field, "!=" if operator == "!=" else "=",
                                                 _unescape_field_value(raw_value)))
    except _SelectorSyntaxError as problem:
        raise errors.BadRequest(str(problem)) from None
    return FieldSelector(requirements)


# Every kind supports these (upstream `DefaultMetaV1FieldSelectorConversion`).
_ALWAYS_SELECTABLE_FIELDS = ("metadata.name", "metadata.namespace")


def validate_field_selector(selector: FieldSelector, allowed: Iterable[str], kind: str = "") -> None:
    """Reject fields the resource cannot be selected by (upstream's field label conversion).

    `allowed` is the resource's selectable field names (`Resource.field_selectors` keys);
    metadata.name and metadata.namespace are always allowed. `kind` is accepted for callers'
    convenience; upstream's message does not name it.
    """
    allowed_fields = set(allowed)
    allowed_fields.update(_ALWAYS_SELECTABLE_FIELDS)
    for requirement in selector.requirements:
        if requirement.field not in allowed_fields:
            raise errors.BadRequest(f"field label not supported: {requirement.field}")


def object_field(obj: Mapping[str, Any] | None, path: str) -> str:
    """The string form of the value at a dotted path, as field selectors compare it.

    Booleans print as "true"/"false", numbers in decimal, missing or null as "".
    Containers (never selectable upstream) also give "".
    """
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return ""
        value = value.get(part)
        if value is None:
            return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return ""


def object_fields(obj: Mapping[str, Any], field_paths: Mapping[str, str]) -> Callable[[str], str]:
    """A lazy field getter for `FieldSelector.matches`: selector field name -> object path
    through `field_paths` (a `Resource.field_selectors` map), plus metadata.name/namespace."""

    def get(field: str) -> str:
        return object_field(obj, field_paths.get(field, field))

    return get
