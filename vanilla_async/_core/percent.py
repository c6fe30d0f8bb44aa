"""Strict percent-decoding (RFC 3986 §2.1), shared by the router, the form parser and static files.

Lenient decoders (`urllib.parse.unquote`) pass a ``%`` that is not followed by two hex digits
through unchanged; a server that does so and one that rejects it disagree about which resource a
URL names. Here such an escape is an error, which each caller turns into its own 400.
"""

from __future__ import annotations

import re
import urllib.parse

_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


class PercentError(ValueError):
    """A ``%`` not followed by two hex digits."""


def unquote_strict(raw: bytes) -> bytes:
    """``raw`` with every ``%XX`` decoded; `PercentError` for a malformed escape. No ``+`` → space
    (that is a form rule: the caller replaces it first)."""
    if b"%" not in raw:
        return raw
    if _BAD_ESCAPE.search(raw) is not None:
        raise PercentError(f"malformed percent-escape in {raw[:80]!r}: use %XX with two hex digits")
    return urllib.parse.unquote_to_bytes(raw)
