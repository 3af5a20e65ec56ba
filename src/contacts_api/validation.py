"""Zod-style validation driven by msgspec Struct annotations: every failing field is reported.

The wire schemas (msgspec Structs with `Meta` constraints) are the single source of truth: the
OpenAPI document is generated from them and this module derives its checks from them, so the
documented rule and the enforced rule cannot drift apart. msgspec itself stops at the first
error; iClosed (Zod) lists every failing field, hence this small engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any
from urllib.parse import urlsplit

import msgspec
import msgspec.inspect as mi

from contacts_api.errors import ValidationFailed
from contacts_api.timeutil import parse_zulu


def js_length(text: str) -> int:
    """String length as JavaScript (and so Zod) counts it: UTF-16 code units."""
    if text.isascii():  # the common case, without encoding a copy (a hot path of imports)
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def js_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# JavaScript's white space and line terminators: its regular expressions' \s, and what its
# Number() trims. Unicode spaces, U+2028 and U+FEFF count; U+0085 does not, unlike Python's.
_JS_SPACE = "\t\n\v\f\r \xa0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff" + "".join(
    map(chr, range(0x2000, 0x200B))
)
# An absolute URI: a scheme, then something, and no whitespace (as above) anywhere: the
# published pattern's \S, read by an ECMAScript engine.
_ABSOLUTE_URI = re.compile(f"[A-Za-z][A-Za-z0-9+.\\-]*:[^{re.escape(_JS_SPACE)}]+")


def is_absolute_uri(value: str) -> bool:
    """The pattern above, and a URL that Python's urlsplit can take apart (the referrer's
    query feeds attribution): `http://[::1` or a netloc that NFKC turns into a separator
    is no URL to read a query from, and a 400 rather than a 500 later."""
    if not _ABSOLUTE_URI.fullmatch(value):
        return False
    try:
        urlsplit(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class FieldRule:
    """The checks for one optional input field, derived from its annotation."""

    name: str
    kind: str  # "string" | "integer" | "boolean" | "enum" | "array" (items: the caller's)
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None
    pattern_message: str = "Invalid"
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    format: str | None = None
    min_items: int | None = None

    def check(self, value: Any) -> tuple[Any, list[str]]:
        """Return the accepted value (None when not given) and the error messages."""
        if value is None or value == "":
            return None, []  # [choice] null or "" means "not given"
        if self.kind == "integer":
            return self._check_integer(value)
        if self.kind == "boolean":
            if isinstance(value, bool):
                return value, []
            return None, [f"Expected boolean, received {js_type_name(value)}"]
        if self.kind == "array":
            if not isinstance(value, list):
                return None, [f"Expected array, received {js_type_name(value)}"]
            if self.min_items is not None and len(value) < self.min_items:
                return None, [f"Array must contain at least {self.min_items} element(s)"]
            return value, []
        if not isinstance(value, str):
            return None, [f"Expected string, received {js_type_name(value)}"]
        if self.kind == "enum":
            if value in self.choices:
                return value, []
            expected = " | ".join(f"'{c}'" for c in self.choices)
            return None, [f"Invalid enum value. Expected {expected}, received '{value}'"]
        errors = []
        if "\x00" in value:
            # PostgreSQL text cannot hold NUL; refuse it on both databases alike.
            errors.append("String must not contain NUL characters")
        if self.max_length is not None and js_length(value) > self.max_length:
            errors.append(f"String must contain at most {self.max_length} character(s)")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            errors.append(self.pattern_message)
        if self.format == "uri" and not is_absolute_uri(value):
            errors.append("Invalid url")
        if self.format == "date-time" and not errors and not _converts_to_datetime(value):
            # [choice] The vendor pattern admits year 0000, which no datetime can hold.
            errors.append(self.pattern_message)
        return (None, errors) if errors else (value, [])

    def refused(self, texts: Sequence[str]) -> set[int]:
        """The positions of the texts that `check` would not accept as they are (an error, or
        another value); "" is "not given", never refused.

        For a column of an import's batch: when the column passes whole (each distinct text
        once, the length, NUL and ASCII tests on all of them in C) no text is checked alone;
        otherwise `check` itself finds the refused ones. 5,000 texts: ~0.2 ms for a name or a
        status column, a quarter of what `check` takes; the regexes cost what they cost.
        """
        distinct = set(texts)
        distinct.discard("")
        if self._accepts_all(distinct):
            return set()
        return {n for n, text in enumerate(texts) if text and self.check(text) != (text, [])}

    def _accepts_all(self, texts: set[str]) -> bool:
        """Whether `check` accepts each of these non-empty texts unchanged (False: maybe not)."""
        if not texts:
            return True
        if self.kind == "enum":
            return texts.issubset(self.choices)
        if self.kind != "string":
            return False
        joined = "".join(texts)
        if "\x00" in joined:
            return False
        if self.max_length is not None:
            lengths = map(len if joined.isascii() else js_length, texts)
            if max(lengths) > self.max_length:
                return False
        if self.pattern is not None and not all(map(self.pattern.fullmatch, texts)):
            return False
        if self.format == "uri" and not all(map(is_absolute_uri, texts)):
            return False
        return self.format != "date-time" or all(map(_converts_to_datetime, texts))

    def _check_integer(self, value: Any) -> tuple[Any, list[str]]:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, [f"Expected number, received {js_type_name(value)}"]
        if isinstance(value, float) and value != value:  # NaN: what coercing "abc" gives
            return None, ["Expected number, received nan"]
        if isinstance(value, float):
            if not value.is_integer():
                return None, ["Expected integer, received float"]
            value = int(value)
        if self.minimum is not None and value < self.minimum:
            return None, [f"Number must be greater than or equal to {self.minimum}"]
        if self.maximum is not None and value > self.maximum:
            return None, [f"Number must be less than or equal to {self.maximum}"]
        return value, []


@lru_cache(maxsize=4096)  # a pure function of the text; imports repeat joined times
def _converts_to_datetime(value: str) -> bool:
    """Whether a date-time that passed its pattern is also a representable datetime."""
    try:
        parse_zulu(value)
    except ValueError:
        return False
    return True


def _rule_from_type(name: str, info: mi.Type) -> FieldRule:
    if isinstance(info, mi.UnionType):
        non_null = [t for t in info.types if not isinstance(t, mi.NoneType)]
        if len(non_null) != 1:
            raise TypeError(f"{name}: only Optional[X] unions are supported")
        info = non_null[0]
    extra: dict[str, Any] = {}
    json_schema: dict[str, Any] = {}
    if isinstance(info, mi.Metadata):
        extra = dict(info.extra or {})
        json_schema = dict(info.extra_json_schema or {})
        info = info.type
    if isinstance(info, mi.StrType):
        return FieldRule(
            name,
            "string",
            max_length=info.max_length,
            # re.ASCII: in JavaScript (Zod) \d and [A-Za-z] are ASCII-only, as here.
            pattern=re.compile(info.pattern, re.ASCII) if info.pattern else None,
            pattern_message=extra.get("message", "Invalid"),
            format=json_schema.get("format"),
        )
    if isinstance(info, mi.LiteralType):
        choices = extra.get("choices", info.values)
        return FieldRule(name, "enum", choices=tuple(str(v) for v in choices))
    if isinstance(info, mi.IntType):
        return FieldRule(name, "integer", minimum=info.ge, maximum=info.le)
    if isinstance(info, mi.BoolType):
        return FieldRule(name, "boolean")
    if isinstance(info, mi.ListType):
        return FieldRule(name, "array", min_items=info.min_length)
    raise TypeError(f"{name}: unsupported field type {info!r}")


@cache
def rules_for(struct_type: type[msgspec.Struct]) -> tuple[FieldRule, ...]:
    """The per-field rules of a wire schema, computed once per type."""
    info = mi.type_info(struct_type)
    assert isinstance(info, mi.StructType)
    return tuple(_rule_from_type(f.encode_name, f.type) for f in info.fields)


_decoder = msgspec.json.Decoder()
UTF8_BOM = b"\xef\xbb\xbf"


def decode_json(raw: bytes) -> Any:
    """Decode a request body of any JSON type, or fail with the "Malformed JSON" form error.

    Nesting too deep for the decoder (`[[[[...`) raises RecursionError, and bytes inside a
    string that are not UTF-8 raise UnicodeDecodeError, not DecodeError: bad input all the
    same, never a 5xx.

    A UTF-8 byte order mark before the text is ignored (RFC 8259 8.1 allows it; Node's body
    parsers drop it, so a file saved by a Windows editor and sent with `curl -d @file` is
    accepted there): looked for only after a failed decode, nothing on the usual path.
    """
    try:
        return _decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        if raw[:3] != UTF8_BOM:
            raise ValidationFailed(["Malformed JSON in request body"]) from None
    try:  # one mark only, as Node's parsers drop one
        return _decoder.decode(raw[3:])
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        raise ValidationFailed(["Malformed JSON in request body"]) from None


def decode_json_object(raw: bytes) -> dict[str, Any]:
    """Decode a request body that must be a JSON object, or fail with a form error."""
    body = decode_json(raw)
    if not isinstance(body, dict):
        raise ValidationFailed([f"Expected object, received {js_type_name(body)}"])
    return body


def check_fields(
    body: dict[str, Any], rules: tuple[FieldRule, ...]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Values that passed (given ones only) and the errors of those that did not.

    Keys the rules do not name are ignored, as Zod's default object parsing strips them.
    """
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for rule in rules:
        if rule.name not in body:
            continue
        value, messages = rule.check(body[rule.name])
        if messages:
            errors[rule.name] = messages
        elif value is not None:
            values[rule.name] = value
    return values, errors


# What JavaScript's Number() reads (ECMAScript's StringToNumber): around the number, its
# white space and line terminators (_JS_SPACE); inside, a decimal (no "1_000", no "nan") or
# `Infinity`, or, unsigned, a hex, octal or binary integer.
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INFINITY = re.compile(r"[+-]?Infinity")
_NON_DECIMAL = re.compile(r"0(?:[xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)", re.ASCII)


def coerce_number(text: str) -> float | int:
    """A query value as Zod's z.coerce.number() sees it (JavaScript's Number()); NaN when it
    is not a number."""
    core = text.strip(_JS_SPACE)
    if _DECIMAL.fullmatch(core):
        try:
            return int(core)
        except ValueError:
            return float(core)
    if _NON_DECIMAL.fullmatch(core):
        return int(core, 0)
    if _INFINITY.fullmatch(core):
        return float(core.replace("Infinity", "inf"))
    return float("nan")


def check_query(
    params: Mapping[str, str], rules: tuple[FieldRule, ...], *, required: tuple[str, ...] = ()
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """check_fields for query strings: integer fields are coerced first; `required` must be given.

    An empty value (`?page=`) counts as not given, as in a body; [choice] so does a number's
    value of spaces only (JavaScript's Number() reads it as 0).
    """
    integer_names = {rule.name for rule in rules if rule.kind == "integer"}
    body: dict[str, Any] = {
        name: (coerce_number(text) if text.strip(_JS_SPACE) else "")
        if name in integer_names
        else text
        for name, text in params.items()
    }
    values, errors = check_fields(body, rules)
    for name in required:
        if name not in values and name not in errors:
            errors[name] = ["Required"]
    return values, errors
