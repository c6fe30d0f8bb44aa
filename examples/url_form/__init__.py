"""examples.url_form — an HTML form posted as ``application/x-www-form-urlencoded``, echoed safely.

``GET  /``          the form (name, message, a few checkboxes)
``POST /submit``    the submitted values echoed back in an HTML page, every value HTML-escaped (a
                    ``<script>`` in a field is shown as text, never run); repeated fields (the
                    checkboxes) are all listed. **415** unless the body is urlencoded; **400** for a
                    malformed body (a bad ``%`` escape, invalid UTF-8) or a missing ``name``; **413**
                    beyond `LIMITS` (too many fields, a value too long).
``GET  /search?q=`` the query string, parsed by the same rules (``+`` is a space), echoed escaped.

Run: ``python -m examples.url_form --port 8080 --workers 2`` and open http://127.0.0.1:8080/, or
``curl --data-urlencode 'name=<b>Ann</b>' -d topic=a -d topic=b localhost:8080/submit``.
"""

from __future__ import annotations

from html import escape

from vanilla_async import Request, ServerConfig, StaticResponse, respond
from vanilla_async.forms import FormError, FormLimits, parse_qs, parse_urlencoded
from vanilla_async.routing import Router

HTML = b"text/html; charset=utf-8"
LIMITS = FormLimits(max_fields=50, max_field_bytes=2000, max_total_bytes=64 * 1024)

FORM_PAGE = StaticResponse(200, """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Form</title></head><body>
<form method="post" action="/submit">
  <label>Name <input name="name" required></label>
  <label>Message <textarea name="message"></textarea></label>
  <label><input type="checkbox" name="topic" value="news"> news</label>
  <label><input type="checkbox" name="topic" value="offers"> offers</label>
  <button>Send</button>
</form></body></html>
""", content_type=HTML)


def page(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title></head>'
            f"<body>\n{body}\n</body></html>\n")


router = Router()


@router.get("/")
def form(req: Request, out: bytearray) -> None:
    FORM_PAGE.append_to(out)


@router.post("/submit")
def submit(req: Request, out: bytearray) -> None:
    try:
        fields = parse_urlencoded(req, LIMITS)
    except FormError as exc:
        respond(out, exc.status, page("Error", f"<p>{escape(exc.reason)}</p>"), content_type=HTML)
        return
    name = fields.get("name", "").strip()
    if not name:
        respond(out, 400, page("Error", "<p>name is required</p>"), content_type=HTML)
        return
    topics = "".join(f"<li>{escape(t)}</li>" for t in fields.getall("topic")) or "<li>(none)</li>"
    body = (f"<h1>Thanks, {escape(name)}</h1>\n<p>Your message:</p>\n<pre>{escape(fields.get('message', ''))}</pre>\n"
            f"<ul>{topics}</ul>")
    respond(out, 200, page("Thanks", body), content_type=HTML)


@router.get("/search")
def search(req: Request, out: bytearray) -> None:
    try:
        query = parse_qs(req.query, LIMITS)
    except FormError as exc:
        respond(out, exc.status, page("Error", f"<p>{escape(exc.reason)}</p>"), content_type=HTML)
        return
    respond(out, 200, page("Search", f"<p>You searched for <q>{escape(query.get('q', ''))}</q></p>"),
            content_type=HTML)


config = ServerConfig(handler=router, port=8080)
