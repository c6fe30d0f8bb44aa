"""What is specific to the io_uring backend (`reactor._uring`), on a real ring over real fds.

The reactor's whole contract on io_uring is tested with the other backends in test_reactor.py.
Here: the kernel ending multishot polls (a completion ring too small for the events), a
submission ring that fills up between two turns, fds closed while registered (io_uring holds
the file until the removal reaches it) and fd numbers reused in the same turn, and the error —
naming the epoll fallback — when io_uring cannot be set up. Every loop is bounded by a safety
timer that fails the test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from reactor import (
    BROKEN,
    READABLE,
    WRITABLE,
    BackendUnavailableError,
    Reactor,
    make_reactor,
)
from reactor._uring import UringBackend, uring_unavailable_reason

ROOT = Path(__file__).resolve().parent.parent
REASON = uring_unavailable_reason()
needs_uring = pytest.mark.skipif(REASON is not None, reason=str(REASON))
SAFETY = 5.0


@pytest.fixture
def socks() -> Iterator[list[socket.socket]]:
    """Sockets a test opens (append them); whatever is still open afterwards is closed."""
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for s in opened:
            s.close()


def pairs(socks: list[socket.socket], n: int) -> list[tuple[socket.socket, socket.socket]]:
    out = []
    for _ in range(n):
        a, b = socket.socketpair()
        a.setblocking(False)
        socks += [a, b]
        out.append((a, b))
    return out


def run_bounded(reactor: Reactor) -> None:
    fired: list[bool] = []

    def safety() -> None:
        fired.append(True)
        reactor.stop()

    timer = reactor.call_later(SAFETY, safety)
    try:
        reactor.run()
    finally:
        timer.cancel()
    assert not fired, f"safety timer fired after {SAFETY}s"


def echo_all(reactor: Reactor, streams: list[tuple[socket.socket, socket.socket]], rounds: int) -> dict[int, bytes]:
    """Register every ``a`` as a stream, send one byte per round from every ``b`` (a round once
    the previous one was read everywhere), run until all rounds arrived; return what each read."""
    got: dict[int, bytes] = {a.fileno(): b"" for a, _ in streams}
    state = {"round": 0}

    def send_round() -> None:
        state["round"] += 1
        for _, b in streams:
            b.send(b"%d" % state["round"])

    def on_event(a: socket.socket, mask: int) -> None:
        if not mask & READABLE:
            return
        try:
            got[a.fileno()] += a.recv(100)
        except BlockingIOError:
            return  # a re-added poll reports readiness it cannot know is stale: spurious, harmless
        if all(len(v) == state["round"] for v in got.values()):
            if state["round"] == rounds:
                reactor.stop()
            else:
                reactor.call_soon(send_round)

    for a, _ in streams:
        reactor.add_stream(a.fileno(), partial(on_event, a))
    reactor.call_soon(send_round)
    try:
        run_bounded(reactor)
    finally:
        for a, _ in streams:
            reactor.remove(a.fileno())
    return got


@needs_uring
def test_streams_survive_the_kernel_ending_their_multishot_polls(socks: list[socket.socket]) -> None:
    """A completion ring of 2 for 8 streams: the kernel ends multishot polls whose completion has
    no room; each is re-added, and every stream still sees every arrival (edges keep coming)."""
    backend = UringBackend(entries=2, cq_entries=2)
    reactor = Reactor(backend)
    try:
        streams = pairs(socks, 8)
        got = echo_all(reactor, streams, rounds=3)
        assert backend.multishot_restarts > 0, "the kernel never ended a multishot poll: the test tested nothing"
        assert all(v == b"123" for v in got.values()), got
    finally:
        reactor.close()


@needs_uring
def test_a_full_submission_ring_is_submitted_early_not_dropped(socks: list[socket.socket]) -> None:
    backend = UringBackend(entries=4, cq_entries=256)
    reactor = Reactor(backend)
    try:
        streams = pairs(socks, 40)  # 40 registrations queued in one turn, 4 fit in the ring
        got = echo_all(reactor, streams, rounds=2)
        assert backend.early_submits > 0
        assert all(v == b"12" for v in got.values()), got
        assert backend.registrations == 1  # the reactor's own wake-up socket
    finally:
        reactor.close()


@needs_uring
def test_remove_then_close_releases_the_socket_at_the_next_turn(socks: list[socket.socket]) -> None:
    """A poll request holds the file: the FIN goes out when the removal reaches the kernel."""
    backend = UringBackend()
    try:
        [(a, b)] = pairs(socks, 1)
        backend.add_stream(a.fileno())
        assert backend.poll(0) == [(a.fileno(), WRITABLE)]
        backend.remove(a.fileno())
        a.close()
        backend.poll(0)
        b.settimeout(2.0)
        assert b.recv(10) == b"", "the peer saw no EOF: the poll request still holds the socket"
        assert backend.registrations == 0
    finally:
        backend.close()


@needs_uring
def test_a_reused_fd_number_gets_no_stale_completion(socks: list[socket.socket]) -> None:
    """Connection closed and its fd number reused by a new one within one turn: an event of the
    old socket, already in the completion ring, must not be reported for the new one."""
    backend = UringBackend()
    try:
        [(a, b), (c, _d)] = pairs(socks, 2)
        fd = a.fileno()
        backend.add_stream(fd)
        assert backend.poll(0) == [(fd, WRITABLE)]
        b.send(b"for the old socket")  # its completion is posted now, read only at the next poll
        backend.remove(fd)
        a.close()
        os.dup2(c.fileno(), fd)  # the new socket takes the number, as accept() would
        try:
            backend.add_stream(fd)
            events = dict(backend.poll(0))
            assert backend.stale_completions >= 1, "the old socket's event never reached the ring"
            assert events == {fd: WRITABLE}, events
            backend.remove(fd)
        finally:
            os.close(fd)
    finally:
        backend.close()


@needs_uring
def test_a_watch_whose_fd_closes_before_submission_reports_broken() -> None:
    """epoll_ctl would have refused at once; here the poll request meets the closed fd in the
    kernel (EBADF): the waiter is woken with ERROR|HANGUP and the registration is gone."""
    backend = UringBackend()
    r, w = os.pipe()
    try:
        backend.arm(r, READABLE)
        os.close(r)
        assert backend.poll(0) == [(r, BROKEN)]
        assert backend.registrations == 0
        assert backend.poll(0) == []
    finally:
        os.close(w)
        backend.close()


@needs_uring
def test_a_watch_changing_direction_replaces_its_poll(socks: list[socket.socket]) -> None:
    backend = UringBackend()
    try:
        [(a, b)] = pairs(socks, 1)
        backend.arm(a.fileno(), READABLE)
        assert backend.poll(0) == []  # nothing to read yet
        backend.arm(a.fileno(), READABLE | WRITABLE)
        assert backend.poll(0) == [(a.fileno(), WRITABLE)]  # one-shot: it completed...
        assert backend.registrations == 0  # ...and is gone, like EPOLLONESHOT
        backend.arm(a.fileno(), READABLE)
        b.send(b"x")
        assert backend.poll(1.0) == [(a.fileno(), READABLE)]
    finally:
        backend.close()


def test_a_failed_setup_names_the_epoll_fallback() -> None:
    with pytest.raises(BackendUnavailableError) as info:
        UringBackend(entries=0)  # io_uring_setup refuses an empty ring (EINVAL), or lacks io_uring
    message = str(info.value)
    assert "--backend epoll" in message and "io_uring_setup" in message
    assert isinstance(info.value, ValueError)  # like every "that backend does not work here" error


def test_make_reactor_without_a_free_fd_says_why_and_what_to_use() -> None:
    """io_uring_setup failing for a reason of the machine (here: no fd left, EMFILE) reaches the
    caller of `make_reactor` as the same clear error, in a process of its own."""
    code = textwrap.dedent("""
        import os, resource
        from reactor import BackendUnavailableError, make_reactor
        import reactor._uring  # imported now: importing needs an fd too
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        for _ in range(64):  # use up every fd the limit allows
            try:
                os.open("/dev/null", os.O_RDONLY)
            except OSError:
                break
        try:
            make_reactor("io_uring")
        except BackendUnavailableError as exc:
            print("refused:", exc)
        else:
            print("built a reactor without a free fd?")
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused:"), out.stdout
    assert "--backend epoll" in out.stdout
    if REASON is None:
        assert "EMFILE" in out.stdout


@needs_uring
def test_auto_stays_epoll() -> None:
    reactor = make_reactor("auto")
    try:
        assert reactor.backend_name == "epoll"
    finally:
        reactor.close()
