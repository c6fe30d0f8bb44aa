"""Generator handlers in depth: deadlines, backpressure, disconnects, shutdown, fds of any kind."""

from __future__ import annotations

import math
import os
import resource
import socket
import struct
import time
from typing import Any, Generator

import pytest

from vanilla_async import Limits, Request, ShuttingDown, first, readable, respond, sleep
from vanilla_async.testing import serve, wait_until

#: every test here runs over cleartext and over TLS (conftest.each_transport)
pytestmark = pytest.mark.usefixtures("each_transport")

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
Gen = Generator[Any, Any, None]
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"




# -- deadlines ------------------------------------------------------------------------------------------
def test_request_deadline_answers_504_and_closes_the_generator(backend: str) -> None:
    cleaned: list[bool] = []

    def handler(req: Request, out: bytearray) -> Gen:
        try:
            yield sleep(10)
            respond(out, 200, b"too late")
        finally:
            cleaned.append(True)

    with serve(handler, backend=backend, limits=Limits(request_timeout=0.2)) as server:
        started = time.monotonic()
        r = server.request(GET)
        assert r.status == 504 and r.closes
        assert 0.2 <= time.monotonic() - started < 1.5 and cleaned == [True]


def test_deadline_per_request_overrides_the_default(backend: str) -> None:
    def handler(req: Request, out: bytearray) -> Gen:
        if req.path == b"/short":
            req.timeout = 0.1
        elif req.path == b"/endless":
            req.timeout = math.inf
        yield sleep(0.4)
        respond(out, 200, b"done")

    with serve(handler, backend=backend, limits=Limits(request_timeout=0.25)) as server:
        assert server.request(b"GET /short HTTP/1.1\r\nHost: t\r\n\r\n").status == 504
        assert server.request(b"GET /default HTTP/1.1\r\nHost: t\r\n\r\n").status == 504
        assert server.request(b"GET /endless HTTP/1.1\r\nHost: t\r\n\r\n").body == b"done"


def test_deadline_after_output_left_closes_the_connection(backend: str) -> None:
    def handler(req: Request, out: bytearray) -> Gen:
        out += CHUNKED_HEAD + b"5\r\nfirst\r\n"
        yield sleep(10)

    with serve(handler, backend=backend, limits=Limits(request_timeout=0.2)) as server:
        client = server.connect()
        client.send(GET)
        data = client.read_until_closed()
        assert data.startswith(b"HTTP/1.1 200 OK") and b"first" in data and b"504" not in data


# -- backpressure -----------------------------------------------------------------------------------------
def test_a_generator_is_not_resumed_while_its_client_is_not_reading(backend: str) -> None:
    chunk = b"x" * 65536
    produced: list[int] = []
    limits = Limits(output_high_water=256 * 1024, max_output_buffer=64 * 1024 * 1024, write_timeout=10)

    def handler(req: Request, out: bytearray) -> Gen:
        out += CHUNKED_HEAD
        for i in range(400):  # 25 MiB in total, far beyond what socket buffers hold
            out += b"%x\r\n%s\r\n" % (len(chunk), chunk)
            produced.append(i)
            yield sleep(0)
        out += b"0\r\n\r\n"

    with serve(handler, backend=backend, limits=limits) as server:
        client = server.connect()
        client.send(GET)
        time.sleep(0.5)  # not reading: without backpressure all 400 chunks would be produced by now
        stalled_at = len(produced)
        assert stalled_at < 200, f"the generator ran on to chunk {stalled_at} although nobody read"
        assert server.worker is not None
        conn = next(iter(server.worker.conns.values()))
        assert len(conn.out) <= limits.output_high_water + len(chunk) + 64
        body = client.read_response().body  # now read everything: the stream resumes and completes
        assert len(body) == 400 * len(chunk) and len(produced) == 400


def test_a_reader_that_falls_too_far_behind_is_cut(backend: str) -> None:
    cleaned: list[bool] = []
    limits = Limits(output_high_water=64 * 1024, max_output_buffer=1024 * 1024, write_timeout=30)

    def handler(req: Request, out: bytearray) -> Gen:
        try:
            out += CHUNKED_HEAD
            out += b"%x\r\n%s\r\n" % (8 * 1024 * 1024, b"y" * 8 * 1024 * 1024)  # one giant append
            yield sleep(10)
        finally:
            cleaned.append(True)

    with serve(handler, backend=backend, limits=limits) as server:
        client = server.connect()
        client.send(GET)
        assert wait_until(lambda: cleaned == [True], timeout=3)  # cut at once, not after 30 s


# -- disconnects ------------------------------------------------------------------------------------------
@pytest.mark.plain_only("raw cleartext sockets; TLS handshakes reset mid-way are tests/test_tls.py's")
def test_ten_thousand_disconnects_while_parked_leave_nothing_behind(backend: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4096)), hard))
    finished = [0]

    def handler(req: Request, out: bytearray) -> Gen:
        try:
            yield first(sleep(60), sleep(61))  # a timer each, and a race: all must be withdrawn
        finally:
            finished[0] += 1

    total, batch = 10_000, 500
    with serve(handler, backend=backend) as server:
        for start in range(0, total, batch):
            clients = []
            for i in range(batch):
                s = socket.create_connection(server.address)
                s.sendall(GET)
                clients.append(s)
            assert wait_until(lambda: server.worker is not None and len(server.worker.conns) >= batch, 10)
            for i, s in enumerate(clients):
                if i % 2:  # half leave with RST, half with FIN
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            assert wait_until(lambda: finished[0] == start + batch, 10), finished[0]
        assert server.worker is not None and not server.worker.conns
        stats = server.worker.reactor.stats()
        assert stats.tasks == 0 and stats.watched_fds == 0 and stats.timers == 2  # the date and sweep timers
    assert finished[0] == total
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("leave", ["close", "reset", "half-close"])
def test_a_client_leaving_while_parked_closes_its_generator_without_a_write(backend: str, leave: str) -> None:
    cleaned: list[float] = []

    def handler(req: Request, out: bytearray) -> Gen:
        try:
            yield sleep(30)
            respond(out, 200, b"never")
        finally:
            cleaned.append(time.monotonic())

    with serve(handler, backend=backend) as server:
        client = server.connect()
        client.send(GET)
        time.sleep(0.1)
        left = time.monotonic()
        if leave == "half-close":
            client.shut_wr()
        else:
            if leave == "reset":
                client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
        assert wait_until(lambda: bool(cleaned), 2) and cleaned[0] - left < 1


# -- any fd the handler owns -----------------------------------------------------------------------------------
def test_handlers_wait_on_pipes_eventfds_and_sockets_they_own(backend: str) -> None:
    def handler(req: Request, out: bytearray) -> Gen:
        rd, wr = os.pipe()
        efd = os.eventfd(0, os.EFD_NONBLOCK)
        a, b = socket.socketpair()
        try:
            os.write(wr, b"p")
            assert (yield readable(rd, timeout=1)) is True
            os.eventfd_write(efd, 3)
            assert (yield readable(efd, timeout=1)) is True
            b.send(b"s")
            index, ready = yield first(sleep(1), readable(a))
            assert (index, ready) == (1, True)
            respond(out, 200, os.read(rd, 1) + b"%d" % os.eventfd_read(efd) + a.recv(1))
        finally:
            for fd in (rd, wr, efd):
                os.close(fd)
            a.close()
            b.close()

    with serve(handler, backend=backend) as server:
        assert server.request(GET).body == b"p3s"


# -- shutdown -------------------------------------------------------------------------------------------------
def test_streams_get_a_last_word_when_the_grace_period_ends(backend: str) -> None:
    def handler(req: Request, out: bytearray) -> Gen:
        out += CHUNKED_HEAD
        try:
            while True:
                out += b"5\r\ntick\n\r\n"
                yield sleep(0.05)
        except ShuttingDown:
            out += b"4\r\nbye\n\r\n0\r\n\r\n"

    server = serve(handler, backend=backend).start()
    client = server.connect()
    client.send(GET)
    time.sleep(0.2)
    server.shutdown(grace=0.2)  # the stream never ends by itself: the grace period runs out
    body = client.read_response().body
    assert body.startswith(b"tick\n") and body.endswith(b"bye\n")
    server.assert_no_leaks(server.stop())


def test_the_last_word_is_not_dropped_when_the_socket_buffer_is_full(backend: str) -> None:
    chunk = b"z" * 65536

    def handler(req: Request, out: bytearray) -> Gen:
        sock = socket.socket(fileno=req.fd)  # small kernel buffers, so the backlog stays in `out`
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sock.detach()
        out += CHUNKED_HEAD
        try:
            while True:
                out += b"%x\r\n%s\r\n" % (len(chunk), chunk)
                yield sleep(0)
        except ShuttingDown:
            out += b"4\r\nbye\n\r\n0\r\n\r\n"

    server = serve(handler, backend=backend).start()
    client = server.connect()
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    client.send(GET)
    time.sleep(0.3)  # not reading: the stream backs up and its generator is held
    server.shutdown(grace=0.1)
    time.sleep(0.3)  # the grace period is over; the goodbye sits behind a full socket buffer
    body = client.read_response().body
    assert body.endswith(b"bye\n") and len(body) > len(chunk)
    server.assert_no_leaks(server.stop())


def _timerfd_after(seconds: float) -> int:
    """A one-shot Linux timerfd (Python 3.11 has no os.timerfd_create: libc through ctypes)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    class Timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

    class Itimerspec(ctypes.Structure):
        _fields_ = [("it_interval", Timespec), ("it_value", Timespec)]

    fd = libc.timerfd_create(1, os.O_NONBLOCK | os.O_CLOEXEC)  # CLOCK_MONOTONIC
    if fd < 0:
        raise OSError(ctypes.get_errno(), "timerfd_create failed")
    spec = Itimerspec(Timespec(0, 0), Timespec(int(seconds), int((seconds % 1) * 1e9)))
    if libc.timerfd_settime(fd, 0, ctypes.byref(spec), None) != 0:
        os.close(fd)
        raise OSError(ctypes.get_errno(), "timerfd_settime failed")
    return fd


def test_handlers_wait_on_a_timerfd(backend: str) -> None:
    def handler(req: Request, out: bytearray) -> Gen:
        tfd = _timerfd_after(0.05)
        try:
            started = time.monotonic()
            assert (yield readable(tfd, timeout=2)) is True
            waited = time.monotonic() - started
            expirations = int.from_bytes(os.read(tfd, 8), "little")
            respond(out, 200, b"%d %d" % (expirations, waited >= 0.045))
        finally:
            os.close(tfd)

    with serve(handler, backend=backend) as server:
        assert server.request(GET).body == b"1 1"
