"""The engine (private): everything between a socket and a handler.

::

    config ── limits ── handler (FileBody, Handler: the contract's types; a leaf)
       │
    server ── worker ── connection ── transport (plain; TLS next)
                            │
                            └──── protocol: http1 (framer ← headcache, request, response, grammar)

Nothing here imports the toolbox (``vanilla_async.routing``, ``.sse``, ...); the toolbox imports
only the facade and these modules' documented names. docs/architecture.md tells the life of a
request through them.
"""
