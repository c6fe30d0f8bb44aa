"""CPU a worker spends on one chunked request of tiny chunks (a quadratic-reframing DoS probe).

Not part of the test suite. One run:

    .venv/bin/python bench/chunked_dos.py                 # 1 MiB as 1-byte chunks, ~1.4 KB per send
    .venv/bin/python bench/chunked_dos.py --kib 256 --packet 64

A real worker (`vanilla_async.testing.serve`) runs in a thread; the client sends the head, then the
body as ``--chunk``-byte chunks in sends of ``--packet`` bytes with a short pause between them (so the
server reads many small pieces instead of one coalesced buffer), and reads the response (the sha256 of
the body). Printed: the worker thread's CPU seconds for the whole request (``pthread_getcpuclockid``),
the wire size and the number of sends. Bounded: the body is at most ``--kib`` KiB and the run gives up
after ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import time

from vanilla_async import Limits, Request, respond
from vanilla_async.testing import serve


def handler(req: Request, out: bytearray) -> None:
    respond(out, 200, hashlib.sha256(req.body).hexdigest().encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kib", type=int, default=1024, help="decoded body size in KiB (default 1024)")
    parser.add_argument("--chunk", type=int, default=1, help="bytes of data per chunk (default 1)")
    parser.add_argument("--packet", type=int, default=1400, help="bytes per send (default 1400)")
    parser.add_argument("--pause", type=float, default=0.0001, help="seconds between sends (default 0.0001)")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    args = parser.parse_args()

    body = bytes(i % 251 for i in range(args.kib * 1024))
    size_line = b"%x\r\n" % args.chunk
    pieces = [size_line + body[i:i + args.chunk] + b"\r\n" for i in range(0, len(body), args.chunk)]
    if len(body) % args.chunk:
        pieces[-1] = b"%x\r\n" % (len(body) % args.chunk) + body[-(len(body) % args.chunk):] + b"\r\n"
    wire = b"POST /up HTTP/1.1\r\nHost: bench\r\nTransfer-Encoding: chunked\r\n\r\n" + b"".join(pieces) + b"0\r\n\r\n"
    # max_buffered (2 x max_body_bytes + slack) must hold the whole wire form: 1-byte chunks are 6 bytes each.
    limits = Limits(max_body_bytes=max(len(body), len(wire) // 2 + 1), read_timeout=args.timeout)

    with serve(handler, limits=limits) as server:
        thread = server._thread
        assert thread is not None and thread.ident is not None
        clock = time.pthread_getcpuclockid(thread.ident)
        client = server.connect()
        client.sock.settimeout(args.timeout)
        cpu0 = time.clock_gettime(clock)
        wall0 = time.perf_counter()
        sends = 0
        for i in range(0, len(wire), args.packet):
            client.send(wire[i:i + args.packet])
            sends += 1
            if args.pause:
                time.sleep(args.pause)
        response = client.read_response(b"POST")
        cpu = time.clock_gettime(clock) - cpu0
        wall = time.perf_counter() - wall0
        ok = response.status == 200 and response.body == hashlib.sha256(body).hexdigest().encode()
        print(f"body {len(body)} B as {args.chunk}-byte chunks, wire {len(wire)} B in {sends} sends of "
              f"{args.packet} B: status {response.status} {'ok' if ok else 'WRONG BODY'}, worker CPU {cpu:.3f} s, wall {wall:.3f} s")


if __name__ == "__main__":
    main()
