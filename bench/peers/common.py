"""Shared bits of the peer apps: the canned plaintext body and the JSON payload object.

PAYLOAD comes from ``examples/tiny/payload.py`` so that every Python server serialises the same
object with ``json.dumps`` on every request.  The repo root must be on ``sys.path``
(``bench/run.py`` sets ``PYTHONPATH``); if ``examples.tiny`` cannot be imported as a package
(its ``__init__`` imports the server, which may be mid-edit), the file is loaded directly by path.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

HELLO: bytes = b"Hello, World!"


def _load_payload() -> Any:
    try:
        from examples.tiny.payload import PAYLOAD as payload  # noqa: PLC0415
    except Exception as exc:  # noqa: BLE001 - importing the package runs examples/tiny/__init__ (the server)
        logging.getLogger(__name__).warning("import examples.tiny.payload failed (%s); loading the file", exc)
        path = Path(__file__).resolve().parents[2] / "examples" / "tiny" / "payload.py"
        spec = importlib.util.spec_from_file_location("_bench_payload", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load PAYLOAD from {path}") from None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        payload = module.PAYLOAD
    return payload


PAYLOAD: Any = _load_payload()
