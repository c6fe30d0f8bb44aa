"""examples.redirects — every redirect status, relative → absolute, trailing-slash normalisation.

``GET /old/:status``    ``status`` in 301, 302, 303, 307, 308 → that redirect to ``/new`` (query kept;
                        POST, PUT and DELETE too); any other number → **404** (no such redirect here)
``ANY /new``            200 ``METHOD /new?QUERY body=BODY``: shows what the client did after the redirect
                        (307/308 repeat the method and body; 303 switches to GET)
``POST /form``          the POST/redirect/GET pattern: **303** to ``/done``
``GET /absolute``       a 302 whose ``Location`` is made absolute from the request's ``Host`` (RFC 9110
                        allows relative ones; some old clients want absolute): **400** for a bad Host
``GET /docs``           **308** to ``/docs/`` (a directory-like resource lives at its slash form), query kept
``GET /docs/``          200, the "index"
``GET /docs/page/``     **308** to ``/docs/page`` (a leaf lives without the slash)
``GET /go?to=PATH``     302 to ``PATH`` only if it is a local path (`is_local`), else to ``/``: no open redirect

Run: ``python -m examples.redirects --port 8080 --workers 2``, then ``curl -iL localhost:8080/docs``.
"""

from __future__ import annotations

from vanilla_async import Request, ServerConfig, respond
from vanilla_async.forms import FormError, parse_qs
from vanilla_async.redirects import REDIRECT_STATUSES, RedirectError, absolute_url, is_local, redirect
from vanilla_async.routing import Params, Router

router = Router()


def with_query(req: Request, path: str) -> str:
    """``path`` plus the request's query string (already percent-encoded as the client sent it)."""
    query = req.query
    return path + "?" + query.decode("latin-1") if query else path


@router.route("/old/:status", "GET", "POST", "PUT", "DELETE")
def old(req: Request, out: bytearray, params: Params) -> None:
    raw = params["status"]
    status = int(raw) if raw.isascii() and raw.isdigit() and len(raw) == 3 else 0
    if status not in REDIRECT_STATUSES:
        respond(out, 404, f"no redirect with status {raw!r}; try 301, 302, 303, 307 or 308\n")
        return
    redirect(out, with_query(req, "/new"), status)


@router.route("/new", "GET", "POST", "PUT", "DELETE")
def new(req: Request, out: bytearray) -> None:
    target = req.target.decode("latin-1")
    respond(out, 200, f"{req.method.decode()} {target} body={bytes(req.body).decode('utf-8', 'replace')}\n")


@router.post("/form")
def form(req: Request, out: bytearray) -> None:
    redirect(out, "/done", 303)


@router.get("/done")
def done(req: Request, out: bytearray) -> None:
    respond(out, 200, b"done\n")


@router.get("/absolute")
def absolute(req: Request, out: bytearray) -> None:
    try:
        location = absolute_url(req, "new?from=absolute")
    except RedirectError as exc:
        respond(out, 400, f"{exc}\n")
        return
    redirect(out, location, 302)


@router.get("/docs")
def docs_without_slash(req: Request, out: bytearray) -> None:
    redirect(out, with_query(req, "/docs/"), 308)


@router.get("/docs/")
def docs_index(req: Request, out: bytearray) -> None:
    respond(out, 200, b"docs index\n")


@router.get("/docs/:page")
def docs_page(req: Request, out: bytearray, params: Params) -> None:
    respond(out, 200, f"docs page {params['page']}\n")


@router.get("/docs/:page/")
def docs_page_with_slash(req: Request, out: bytearray, params: Params) -> None:
    redirect(out, with_query(req, req.path[:-1].decode("latin-1")), 308)


@router.get("/go")
def go(req: Request, out: bytearray) -> None:
    try:
        to = parse_qs(req.query).get("to", "/")
    except FormError as exc:
        respond(out, exc.status, exc.reason + "\n")
        return
    redirect(out, to if is_local(to) else "/", 302)


@router.get("/")
def home(req: Request, out: bytearray) -> None:
    respond(out, 200, b"home\n")


config = ServerConfig(handler=router, port=8080)
