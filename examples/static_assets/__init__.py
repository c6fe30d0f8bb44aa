"""examples.static_assets — a single-page app: SPA fallback, immutable hashed assets, WebAssembly.

Serves ``examples/static_assets/public/`` at ``/``:

* a path with no extension that is not a file (``/settings/profile``) → ``index.html`` (200), so the
  app's client-side router can take over; a missing *asset* (``/missing.js``) stays **404**;
* hashed assets (``/assets/app.3f2a1c.js``) → ``Cache-Control: public, max-age=31536000, immutable``
  (their name changes with their content); ``index.html`` → ``no-cache`` (revalidated with its ETag);
* ``/assets/add.wasm`` (a 41-byte module exporting ``add``) → ``Content-Type: application/wasm``,
  which ``WebAssembly.instantiateStreaming`` requires; JavaScript → ``text/javascript; charset=utf-8``.

Run: ``python -m examples.static_assets --port 8080 --workers 2`` and open http://127.0.0.1:8080/any/route.
"""

from __future__ import annotations

from pathlib import Path

from vanilla_async import ServerConfig
from vanilla_async.static import file_handler, static_files

PUBLIC = Path(__file__).resolve().parent / "public"

static = static_files(PUBLIC, prefix=b"/", spa_fallback="index.html", precompressed=())

config = ServerConfig(handler=file_handler(static), port=8080)
