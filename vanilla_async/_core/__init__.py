"""The engine (private): everything between a socket and a handler.

::

    config ── limits ── handler (FileBody, Handler: the contract's types; a leaf)
       │
    server ── worker ── connection ── transport (plain, TLS)
                            │
                            └──── protocol: http1 (framer ← headcache, request, response, grammar),
                                            h2 (after the HTTP/2 preface: same framer, same handlers),
                                            websocket (after a 101: wscodec, wsdeflate)

Nothing here imports the toolbox (``vanilla_async.routing``, ``.sse``, ...); the toolbox imports
only the facade and these modules' documented names. docs/architecture.md tells the life of a
request through them.
"""
