"""The bytes a receiver sees: canonical JSON bodies and timestamps.

The body of every delivery must verify with both of the spec's receiver examples: the Python one
hashes the raw bytes, the Node.js one hashes ``JSON.stringify(JSON.parse(body))``. So the body is
exactly what ``JSON.stringify`` would print for it: no insignificant whitespace, non-ASCII text
left as UTF-8, numbers in ECMAScript's ``Number::toString`` form, and object keys in the order a
JavaScript engine iterates them (integer-like keys first, ascending; then insertion order).
Values that JavaScript cannot hold exactly (integers beyond 2**53 - 1, NaN, lone surrogates) are
refused, as I-JSON (RFC 7493) asks, rather than silently changed.

Documents nest at most ``MAX_DEPTH`` (64) arrays and objects, counting the outermost one (an
event's envelope is level 1, its ``data`` level 2). Deeper ones are refused twice over: as text,
by ``check_depth`` before any parser recurses into them (the API's bodies, the CLI's ``--data``),
and as values, by ``encode_json`` before anything is stored, so nothing stored is too deep for a
recursive reader (``json.loads``, the API's encoder) to read back.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from json.encoder import encode_basestring  # the C-accelerated, non-ASCII-preserving escaper
from typing import Any, TypeAlias, cast

from .errors import ValidationError

__all__ = [
    "MAX_DEPTH",
    "MAX_SAFE_INTEGER",
    "JsonValue",
    "check_depth",
    "encode_json",
    "format_timestamp",
    "js_number",
    "parse_timestamp",
]

JsonValue: TypeAlias = "bool | int | float | str | Sequence[JsonValue] | Mapping[str, JsonValue] | None"

MAX_SAFE_INTEGER = 2**53 - 1
MAX_DEPTH = 64
MIN_YEAR, MAX_YEAR = 1000, 9998
_MAX_ARRAY_INDEX = 2**32 - 2
#: The tokens that matter to nesting: whole strings (so brackets inside them are skipped),
#: brackets, and the separators that move to the next key or index.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]')


def _too_deep(path: str) -> ValidationError:
    return ValidationError(path, f"nested deeper than {MAX_DEPTH} arrays and objects; flatten it")


def check_depth(text: str | bytes, depth: int = 0, path: str = "") -> None:
    """Refuse JSON ``text`` that nests more than ``MAX_DEPTH`` arrays and objects, naming where
    (``data.a[0].b``), without parsing it or recursing: call it before a recursive parser sees
    the text. ``depth`` is the level the text sits at (``data`` alone: 1). Malformed text is
    left for the parser to report."""
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if data.count(b"[") + data.count(b"{") + depth <= MAX_DEPTH:
        return  # cannot be too deep: the common case, at C speed
    if _nesting(data) + depth <= MAX_DEPTH:
        return  # many brackets (a batch of events), none deep: still at C speed
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    # One frame per open container: [is_object, key or index, expecting a key].
    frames: list[list[object]] = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            if len(frames) + depth >= MAX_DEPTH:
                raise _too_deep(_path_of(path, frames))
            frames.append([token == "{", None if token == "{" else 0, token == "{"])
        elif token in "]}":
            if frames:
                frames.pop()
        elif not frames:
            continue
        elif token == ",":
            frame = frames[-1]
            if frame[0]:
                frame[2] = True
            else:
                frame[1] = cast(int, frame[1]) + 1
        elif token == ":":
            frames[-1][2] = False
        elif frames[-1][0] and frames[-1][2]:
            try:
                frames[-1][1] = json.loads(token)
            except ValueError:
                frames[-1][1] = token[1:-1]


def _nesting(text: bytes) -> int:
    """How deep the JSON ``text`` nests, or more, at C speed (``bytes`` methods, no loop per
    character): escapes and then strings dropped, brackets alone, then innermost pairs removed
    a level per pass. Both kinds of bracket count as one, so mismatched ones can only make it
    deeper. It stops counting past ``MAX_DEPTH``, as it does where brackets do not pair up
    (``check_depth`` then walks the text token by token, which is exact)."""
    # Backslashes come in JSON strings only, and pair from the left: drop the escaped
    # backslashes, then the escaped quotes; every quote left opens or closes a string.
    unescaped = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    quoted = unescaped.translate(None, _NOT_STRUCTURE)
    brackets = b"".join(quoted.split(b'"')[::2]).translate(_ONE_KIND)
    level = 0
    while brackets:
        if level > MAX_DEPTH:
            return level
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return MAX_DEPTH + 1  # unbalanced: let the exact walk decide
        brackets, level = shorter, level + 1
    return level


_NOT_STRUCTURE = bytes(set(range(256)) - set(b'[]{}"'))
_ONE_KIND = bytes.maketrans(b"{}", b"[]")


def _path_of(path: str, frames: list[list[object]]) -> str:
    for is_object, place, _ in frames:
        if place is None:
            continue
        if is_object:
            path = f"{path}.{place}" if path else str(place)
        else:
            path = f"{path}[{place}]"
    return path or "$"


def encode_json(value: object, path: str = "$") -> str:
    """Encode ``value`` as the exact text ``JSON.stringify`` gives; raise ValidationError otherwise."""
    if _plain(value, 1):
        # Python's own encoder agrees with JavaScript on these values, at a tenth of the cost.
        text = _dumps(value)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: the slow path says where
        else:
            return text
    out: list[str] = []
    _encode(value, out, path, 1)
    return "".join(out)


_dumps = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
).encode


def _plain(value: object, depth: int = 1) -> bool:
    """Whether ``json.dumps`` prints ``value`` exactly as ``JSON.stringify`` would: only plain
    dicts, lists, strings, safe integers, and floats that both languages write the same way
    (not integral, between 1e-4 and 1e16, where both use plain decimal notation), and no
    integer-like object keys (JavaScript moves those to the front); nothing deeper than
    ``MAX_DEPTH`` (the slow path refuses it)."""
    # Exact types only: a subclass (a str-like enum, a dict with its own order) takes the slow path.
    # One loop over a stack of containers, each leaf checked inline: no call per value (this
    # runs on every event published, over every value of its data).
    stack: list[tuple[Any, int]] = [(value, depth)]
    pop, push = stack.pop, stack.append
    while stack:
        container, level = pop()
        kind = type(container)
        items: Iterable[Any]
        if kind is dict:
            if level > MAX_DEPTH:
                return False
            for key in container:
                # JavaScript moves array-index keys to the front: those start with an ASCII digit.
                if type(key) is not str or (key and key[0] in _DIGITS and _is_array_index(key)):
                    return False
            items = container.values()
        elif kind is list or kind is tuple:
            if level > MAX_DEPTH:
                return False
            items = container
        else:
            items, level = (container,), level - 1  # a scalar at the top
        for item in items:
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if kind is int:
                if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                    return False
            elif kind is float:
                magnitude = abs(item)
                if not 1e-4 <= magnitude < 1e16 or magnitude.is_integer():
                    return False
            elif kind is dict or kind is list or kind is tuple:
                push((item, level + 1))
            else:
                return False
    return True


_DIGITS = "0123456789"


def _encode(value: object, out: list[str], path: str, depth: int = 1) -> None:
    if isinstance(value, str):
        out.append(_string(value, path))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            out.append(int.__repr__(value))
        else:
            raise ValidationError(
                path,
                f"integer {value} is outside ±(2^53-1) and would change in JavaScript; send it as a string",
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(path, "NaN and Infinity are not JSON")
        out.append(js_number(value))
    elif isinstance(value, Mapping):
        if depth > MAX_DEPTH:
            raise _too_deep(path)
        out.append("{")
        first = True
        for key in _js_key_order(value, path):
            if not first:
                out.append(",")
            first = False
            out.append(_string(key, path))
            out.append(":")
            _encode(value[key], out, f"{path}.{key}", depth + 1)
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        if depth > MAX_DEPTH:
            raise _too_deep(path)
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out, f"{path}[{index}]", depth + 1)
        out.append("]")
    else:
        raise ValidationError(path, f"{type(value).__name__} is not a JSON value")


def _string(text: str, path: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(path, "text contains a lone surrogate, which is not valid Unicode") from None
    return encode_basestring(text)


def _is_array_index(key: str) -> bool:
    # JavaScript iterates "canonical numeric" keys below 2**32 - 1 first, in numeric order.
    if not key.isdigit() or not key.isascii() or (len(key) > 1 and key[0] == "0"):
        return False
    return int(key) <= _MAX_ARRAY_INDEX


def _js_key_order(mapping: Mapping[object, object], path: str) -> list[str]:
    keys: list[str] = []
    for key in mapping:
        if not isinstance(key, str):
            raise ValidationError(path, f"object key {key!r} is not a string")
        keys.append(key)
    index_keys = [key for key in keys if _is_array_index(key)]
    if not index_keys:
        return keys
    index_keys.sort(key=int)
    return index_keys + [key for key in keys if not _is_array_index(key)]


def js_number(value: float) -> str:
    """ECMAScript ``Number::toString`` of a finite float (shortest round-trip digits)."""
    if value == 0:
        return "0"  # also for -0.0, as JavaScript prints it
    if value < 0:
        return "-" + js_number(-value)
    _, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)  # finite, so never "n"/"N"/"F"
    all_digits = "".join(map(str, digit_tuple))
    digits = all_digits.rstrip("0")
    k = len(digits)
    n = exponent + len(all_digits)  # value == 0.digits * 10**n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def format_timestamp(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``, as in the spec; milliseconds only when there are any."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the core only handles aware UTC times")
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def parse_timestamp(text: str, field: str = "timestamp") -> datetime:
    """Parse an ISO-8601 time that carries an offset; return it in UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValidationError(
            field, f"{text!r} is not an ISO-8601 time such as 2024-01-20T15:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise ValidationError(field, f"{text!r} has no time zone; add Z for UTC")
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        # So that no offset can take it past what Python holds (0001-01-01T00:00+01:00).
        raise ValidationError(field, f"{text!r} is out of the range of times: give a year from 1000 to 9998")
    return moment.astimezone(UTC)
