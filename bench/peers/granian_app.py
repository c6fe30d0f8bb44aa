"""RSGI app for granian (its native, fastest Python interface).

Run: granian --interface rsgi --workers 1 granian_app:app
"""

from __future__ import annotations

import json
from typing import Any

from common import HELLO, PAYLOAD

_PLAIN = [("content-type", "text/plain")]
_JSON = [("content-type", "application/json")]
_MISSING = [("content-type", "text/plain")]


async def app(scope: Any, protocol: Any) -> None:
    if scope.proto != "http":  # websockets are disabled (--no-ws); nothing else to serve
        return
    path = scope.path
    if path == "/":
        protocol.response_bytes(200, _PLAIN, HELLO)
    elif path == "/json":
        protocol.response_str(200, _JSON, json.dumps(PAYLOAD))
    else:
        protocol.response_bytes(404, _MISSING, b"Not Found")
