"""The floor of pure Python: a single-process, level-triggered epoll loop that answers canned responses.

No parser, no routing table, no framework: every read is split on ``\\r\\n\\r\\n`` and every complete
request gets a response; all responses produced by one read go out in ONE ``send``. ``GET /json``
does ``json.dumps(PAYLOAD)`` per request so it is comparable with the real servers. Request bodies
are not supported (GET benchmarks only).

Run from the repo root: ``python3 bench/bare_epoll.py --port P``
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import time
from email.utils import formatdate
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
from common import HELLO, PAYLOAD  # noqa: E402

HEAD_PLAIN = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
HEAD_JSON = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nNot Found"
IN, OUT = select.EPOLLIN, select.EPOLLOUT


class DateCache:
    """The ``Date`` header line, rebuilt at most once per second."""

    def __init__(self) -> None:
        self.second = -1
        self.line = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.line = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n\r\n"
        return self.line


def respond(request: bytes, date: bytes) -> bytes:
    """Build the response for one request head (only the request line is looked at)."""
    line_end = request.find(b"\r\n")
    parts = (request if line_end < 0 else request[:line_end]).split(b" ")
    path = parts[1] if len(parts) > 1 else b""
    if path == b"/":
        return HEAD_PLAIN + date + HELLO
    if path == b"/json":
        body = json.dumps(PAYLOAD).encode()
        return HEAD_JSON + str(len(body)).encode() + b"\r\n" + date + body
    return NOT_FOUND


def serve(host: str, port: int) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)
    listener.setblocking(False)
    ep = select.epoll()
    ep.register(listener.fileno(), IN)
    socks: dict[int, socket.socket] = {}
    inbuf: dict[int, bytes] = {}
    outbuf: dict[int, bytes] = {}
    dates = DateCache()
    lfd = listener.fileno()

    def close(fd: int) -> None:
        ep.unregister(fd)
        socks.pop(fd).close()
        inbuf.pop(fd, None)
        outbuf.pop(fd, None)

    while True:
        for fd, events in ep.poll():
            if fd == lfd:
                while True:
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    socks[conn.fileno()] = conn
                    inbuf[conn.fileno()] = b""
                    ep.register(conn.fileno(), IN)
                continue
            sock = socks[fd]
            if events & OUT:  # finish a partial send, then go back to reading
                try:
                    sent = sock.send(outbuf[fd])
                except OSError:
                    close(fd)
                    continue
                outbuf[fd] = outbuf[fd][sent:]
                if not outbuf[fd]:
                    del outbuf[fd]
                    ep.modify(fd, IN)
                continue
            if events & (IN | select.EPOLLHUP | select.EPOLLERR):
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    close(fd)
                    continue
                if not data:
                    close(fd)
                    continue
                buf = inbuf[fd] + data
                date = dates.get()
                responses = []
                start = 0
                while (end := buf.find(b"\r\n\r\n", start)) >= 0:
                    responses.append(respond(buf[start:end], date))
                    start = end + 4
                inbuf[fd] = buf[start:]
                if responses:
                    out = b"".join(responses)
                    try:
                        sent = sock.send(out)
                    except OSError:
                        close(fd)
                        continue
                    if sent < len(out):  # socket buffer full: park the rest, stop reading until drained
                        outbuf[fd] = out[sent:]
                        ep.modify(fd, OUT)


def main() -> None:
    parser = argparse.ArgumentParser(description="Bare pure-Python epoll HTTP responder (benchmark floor).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        serve(args.host, args.port)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
