"""The HTTP grammar, written once (RFC 9110 §5.6, RFC 9112): what every module that parses or
builds HTTP checks against — the framer, the response builder, cookies, the examples' parsers.

Like `errors`, this is a leaf module: it imports nothing of the engine, and the engine and the
toolbox both import it.
"""

from __future__ import annotations

import re
from http import HTTPStatus

__all__ = (
    "BAD_FIELD_VALUE", "TCHAR", "TOKEN", "TOKEN_STR", "TOKEN_STR_PATTERN", "is_token", "reason_phrase",
)

#: the characters of a ``token`` (RFC 9110 §5.6.2), as the inside of a regex character class
TCHAR = rb"!#$%&'*+.^_`|~0-9A-Za-z-"
#: one or more tchars, for ``TOKEN.fullmatch(name)`` over bytes
TOKEN = re.compile(rb"[" + TCHAR + rb"]+")
#: the same pattern over ``str`` (header names and cookie names given as text)
TOKEN_STR_PATTERN = r"[" + TCHAR.decode("ascii") + r"]+"
TOKEN_STR = re.compile(TOKEN_STR_PATTERN)
#: what may never appear in a field value we send: CR, LF (response splitting) and NUL
BAD_FIELD_VALUE = re.compile(rb"[\r\n\x00]")


def is_token(value: bytes | str) -> bool:
    """True when ``value`` is a non-empty RFC 9110 token (a valid method or field name)."""
    if isinstance(value, str):
        return TOKEN_STR.fullmatch(value) is not None
    return TOKEN.fullmatch(value) is not None


_REASONS: dict[int, str] = {int(s): s.phrase for s in HTTPStatus}


def reason_phrase(status: int) -> str:
    """The standard reason phrase for ``status`` (``"Status NNN"`` for a code with none)."""
    return _REASONS.get(status) or f"Status {status}"
