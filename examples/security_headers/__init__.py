"""examples.security_headers — the standard security headers on every response, for free.

``SECURITY`` is a `vanilla_async.security.SecurityHeaders`: its header lines (CSP with
``frame-ancestors 'none'``, X-Content-Type-Options, X-Frame-Options, Referrer-Policy,
Permissions-Policy, Cross-Origin-Opener-Policy, Cross-Origin-Resource-Policy) are built **once**
into ``SECURITY.block`` and appended to every response: the page, the JSON API, the static file
(`vanilla_async.static` takes the same block), the 404 and the 405.

HSTS is added only when ``BEHIND_TLS=1`` is set at startup: browsers ignore
``Strict-Transport-Security`` over plain HTTP, and it makes sense only when a TLS-terminating
proxy serves this site over HTTPS.

* ``GET /`` → an HTML page; ``GET /api/status`` → JSON; ``GET /static/app.js`` → a file;
  anything else → 404; a method other than GET/HEAD → 405.

Run: ``python -m examples.security_headers --port 8080 --workers 2``, then ``curl -i http://127.0.0.1:8080/``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from vanilla_async import Request, ServerConfig, StaticResponse
from vanilla_async.security import SecurityHeaders
from vanilla_async.static import FileBody, file_handler, static_files

SECURITY = SecurityHeaders(hsts=os.environ.get("BEHIND_TLS") == "1")
_SEC = SECURITY.headers()

PAGE = StaticResponse(200, b"<!doctype html><title>secure</title><script src=\"/static/app.js\"></script>\n",
                      content_type=b"text/html; charset=utf-8", headers=_SEC)
STATUS = StaticResponse(200, b'{"status":"ok"}', content_type=b"application/json", headers=_SEC)
NOT_FOUND = StaticResponse(404, b"not found\n", headers=_SEC)
NOT_ALLOWED = StaticResponse(405, b"only GET and HEAD\n", headers=[*_SEC, ("Allow", "GET, HEAD")])

_ASSETS = tempfile.mkdtemp(prefix="vanilla-security-")
_OWNER = os.getpid()
atexit.register(lambda: shutil.rmtree(_ASSETS, ignore_errors=True) if os.getpid() == _OWNER else None)
with open(os.path.join(_ASSETS, "app.js"), "wb") as _f:
    _f.write(b"console.log('served with security headers');\n")
assets = static_files(_ASSETS, prefix=b"/static/", headers=SECURITY.block, precompressed=())


def handler(req: Request, out: bytearray) -> FileBody | None:
    path = req.path
    if path.startswith(b"/static/"):
        return assets(req, out)
    if req.method not in (b"GET", b"HEAD"):
        NOT_ALLOWED.append_to(out)
    elif path == b"/":
        PAGE.append_to(out)
    elif path == b"/api/status":
        STATUS.append_to(out)
    else:
        NOT_FOUND.append_to(out)
    return None


config = ServerConfig(handler=file_handler(handler), port=8080)
