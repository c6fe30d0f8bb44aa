"""socketify.py (uWebSockets via cffi) app, one process.

Run: python socketify_app.py --port P
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from socketify import App

from common import HELLO, PAYLOAD


def plaintext(res: Any, req: Any) -> None:
    res.send(HELLO, content_type=b"text/plain")


def json_handler(res: Any, req: Any) -> None:
    res.send(json.dumps(PAYLOAD), content_type=b"application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    app = App()
    app.get("/", plaintext)
    app.get("/json", json_handler)

    def on_listen(config: Any) -> None:
        logging.warning("socketify listening on %s:%d", args.host, config.port)

    app.listen({"port": args.port, "host": args.host}, on_listen)
    app.run()


if __name__ == "__main__":
    main()
