"""The canonical JSON text of parsed data at C speed: ``core.wire.encode_json``'s text, or None.

``encode_json`` first walks every value in Python to know that ``json`` prints it as
JavaScript would (about 8 µs for a 1 KB event, then 10 µs for ``json``'s encoder). msgspec
writes the same text as ``json`` for strings (every code point checked), integers, booleans and
null, and for the floats ``encode_json`` lets ``json`` write (non-integral, 1e-4 ≤ |x| < 1e16:
the shortest digits, in decimal form, for both). So msgspec writes the text, and a few ``bytes``
searches over it refuse anything that might differ: an exponent, an integral or tiny float, a
long run of digits, an object key starting with a digit, deep nesting. A refusal means "ask
``encode_json``", which is exact (and names what it refuses): the answer never changes, only its
cost (about 2 µs for a 1 KB event).

Only for values msgspec's JSON parser made (exact dicts, lists, strings, numbers, booleans,
null; never NaN or an infinity, which msgspec would write as ``null`` where ``encode_json``
refuses them; ``json.loads`` makes those): msgspec would also write a tuple, a datetime or an
enum, which ``encode_json`` treats otherwise.
"""

from __future__ import annotations

import msgspec

from ..core.wire import MAX_DEPTH

__all__ = ["canonical_text"]

_encode = msgspec.json.Encoder().encode

# Digits 1-9 as ``1`` (``0`` kept) and ``]``, ``}``, ``{`` as ``,``; then every digit as ``0``:
# a few ``in`` tests (C's fast search) then find every pattern below. (A regular expression
# takes 20 µs over 1 KB here.)
_FOLD = bytes.maketrans(b"23456789]}{", b"11111111,,,")
_ZERO = bytes.maketrans(b"1", b"0")
_SIXTEEN = b"0" * 16


def canonical_text(data: object, depth: int = 1, *, encoded: bytes | None = None) -> str | None:
    """``encode_json(data)`` if its text is certainly the same, else None. ``data`` sits at level
    ``depth`` (an envelope's ``data``: 1, its envelope being the one level above). ``encoded``:
    msgspec's JSON of ``data`` (``msgspec.json.encode``), if the caller has made it already."""
    if encoded is not None:
        raw = encoded
    else:
        try:
            raw = _encode(data)
        except (TypeError, UnicodeError, OverflowError, msgspec.EncodeError):
            return None  # a lone surrogate, say: encode_json says where
    if raw.count(b"[") + raw.count(b"{") + depth > MAX_DEPTH:
        return None
    folded = raw.translate(_FOLD)
    # An object key starting with a digit may be array-index-like, which JavaScript moves to the
    # front (strings in arrays starting with a digit match too: refused, harmlessly).
    if b',"0' in folded or b',"1' in folded:
        return None
    # An integral float (JavaScript writes ``1``, msgspec ``1.0``; a number ends at ``,``, ``]``,
    # ``}`` or the end: no whitespace).
    if b".0," in folded or folded.endswith(b".0"):
        return None
    # An exponent, a float below 1e-4 (msgspec's ``0.00001``, JavaScript's ``1e-5``), 16 digits
    # (an integer past 2**53 - 1 has them; a few safe ones too): or such text inside a string (a
    # UUID's ``550e8400``), which is then looked at without its strings.
    if (
        b"0e" in folded or b"1e" in folded or b"0.0000" in folded or _SIXTEEN in folded.translate(_ZERO)
    ) and _suspect_numbers(raw):
        return None
    return raw.decode()


def _suspect_numbers(raw: bytes) -> bool:
    """Whether the numbers of ``raw``, outside its strings, hold an exponent, a float below 1e-4
    or 16 digits in a row. Backslashes come in strings only, and pair from the left: drop the
    escaped backslashes, then the escaped quotes; every quote left opens or closes a string."""
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2]).translate(_FOLD)
    return (
        b"0e" in outside
        or b"1e" in outside
        or b"E" in outside
        or b"0.0000" in outside
        or _SIXTEEN in outside.translate(_ZERO)
    )
