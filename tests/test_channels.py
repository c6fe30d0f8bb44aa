"""vanilla_async.channels: broadcast across instances through a real PostgreSQL, replay, faults, fan-out.

Servers are real processes (``python -m examples.sse``) on their own ports; clients are raw sockets on
127.0.0.1. A stream is read as bytes and its events found by ``id: N\\ndata: ...\\n\\n`` (each event is
one chunk, so chunk framing never splits one).
"""

from __future__ import annotations

import json
import re
import selectors
import socket
import time
from pathlib import Path
from typing import Any, Callable, Generator, Iterator

import pytest

from examples.sse import Settings, make_config
from vanilla_async import Request, ServerConfig, Token
from vanilla_async.channels import ChannelError, Hub, Message, WorkerBus
from vanilla_async.pgcluster import TemporaryCluster
from vanilla_async.testing import ServerProcess, serve

ROOT = Path(__file__).resolve().parents[1]
EVENT = re.compile(rb"(?:event: ([^\n]*)\n)?id: (\d+)\ndata: ([^\n]*)\n\n")


class Stream:
    """A subscriber over a raw socket: ``events`` are (event type, id, data) in arrival order."""

    def __init__(self, port: int, last_id: int | None = None, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        extra = b"Last-Event-ID: %d\r\n" % last_id if last_id is not None else b""
        self.sock.sendall(b"GET /events HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n")
        self.raw = b""
        self.events: list[tuple[str, int, str]] = []
        self.closed = False
        self.wait(lambda: b"event: hello" in self.raw, "no hello")
        assert self.raw.startswith(b"HTTP/1.1 200 "), self.raw[:200]

    def feed(self, data: bytes) -> None:
        if not data:
            self.closed = True
        self.raw += data
        self.events = [(m[1].decode() if m[1] else "message", int(m[2]), m[3].decode()) for m in EVENT.finditer(self.raw)]

    def wait(self, condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            assert left > 0 and not self.closed, f"{what} within {timeout}s; got {self.raw[-600:]!r}"
            self.sock.settimeout(left)
            try:
                self.feed(self.sock.recv(65536))
            except TimeoutError:
                pass

    def messages(self) -> list[tuple[int, str]]:
        return [(i, d) for kind, i, d in self.events if kind == "message"]

    def close(self) -> None:
        self.sock.close()


def post(port: int, body: bytes) -> tuple[int, bytes, bytes]:
    """POST /broadcast: (status, head, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /broadcast HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, payload


def published(port: int, body: bytes) -> int:
    status, _, payload = post(port, body)
    assert status == 202, payload
    return int(json.loads(payload)["id"])


def instance(dsn: str, *extra: str, heartbeat: str = "0.5") -> ServerProcess:
    proc = ServerProcess("-m", "examples.sse", "--port", "0", "--workers", "1", "--bus", "postgres", *extra,
                         env={"DATABASE_URL": dsn, "SSE_HEARTBEAT": heartbeat, "SSE_RETAIN": "200"}, cwd=ROOT)
    proc.wait_for(r"listens on PostgreSQL channel", timeout=30)
    return proc


@pytest.fixture
def two(pg_dsn: str) -> Iterator[tuple[int, int]]:
    with instance(pg_dsn) as a, instance(pg_dsn) as b:
        yield a.port(), b.port()


# -- across hosts through PostgreSQL ---------------------------------------------------------------------
def test_posted_on_b_reaches_a_subscriber_on_a(two: tuple[int, int]) -> None:
    a, b = two
    sub = Stream(a)
    delays = []
    for n in range(5):
        started = time.monotonic()
        ident = published(b, b"hello %d" % n)
        sub.wait(lambda: any(i == ident for i, _ in sub.messages()), f"message {ident} on A")
        delays.append(time.monotonic() - started)
    assert [d for _, d in sub.messages()] == [f"hello {n}" for n in range(5)]
    ids = [i for i, _ in sub.messages()]
    assert ids == list(range(ids[0], ids[0] + 5))  # dense and in order
    assert max(delays) < 1.0, delays  # the brief's bound is 100 ms; measured in the bench, not asserted here
    sub.close()


def test_reconnecting_to_b_replays_what_was_missed_once_in_order(two: tuple[int, int]) -> None:
    a, b = two
    first = Stream(a)
    ids = [published(a, b"before %d" % n) for n in range(3)]
    first.wait(lambda: len(first.messages()) == 3, "three messages")
    last = first.messages()[-1][0]
    assert last == ids[-1]
    first.close()
    missed = [published(a if n % 2 else b, b"missed %d" % n) for n in range(6)]
    second = Stream(b, last_id=last)  # another host, with A's last id
    second.wait(lambda: len(second.messages()) == 6, "the missed messages")
    live = published(a, b"live")
    second.wait(lambda: len(second.messages()) == 7, "the live one after the backlog")
    assert second.messages() == [(i, f"missed {n}") for n, i in enumerate(missed)] + [(live, "live")]
    time.sleep(0.2)
    assert len(second.messages()) == 7  # none twice
    second.close()


def test_an_id_older_than_the_retention_gets_a_reset(two: tuple[int, int]) -> None:
    a, b = two
    for n in range(205):  # SSE_RETAIN=200
        last = published(b, b"m%d" % n)
    stale = Stream(a, last_id=last - 203)
    stale.wait(lambda: len(stale.messages()) >= 200, "the retained messages")
    kinds = [kind for kind, _, _ in stale.events]
    assert kinds[0] == "reset" and kinds.count("reset") == 1
    reset = json.loads(stale.events[0][2])
    assert reset == {"since": last - 203, "oldest": last - 199}
    assert [i for i, _ in stale.messages()] == list(range(last - 199, last + 1))
    stale.close()
    future = Stream(a, last_id=last + 1000)  # a counter from another life
    future.wait(lambda: any(kind == "reset" for kind, _, _ in future.events), "a reset")
    future.close()


def test_postgresql_down_gives_503_and_subscribers_stay_then_replay_fills_the_gap() -> None:
    with TemporaryCluster() as cluster, instance(cluster.dsn) as pa, instance(cluster.dsn) as pb:
        a, b = pa.port(), pb.port()
        sub = Stream(a)
        before = published(b, b"before")
        sub.wait(lambda: len(sub.messages()) == 1, "the first message")
        assert cluster._pg_ctl("stop", "-m", "fast", "-w").returncode == 0  # (no public stop-and-keep yet)
        try:
            status, head, _ = post(b, b"while down")
            assert status == 503 and b"Retry-After: 1" in head, head
            beats = sub.raw.count(b": heartbeat")
            sub.wait(lambda: sub.raw.count(b": heartbeat") >= beats + 2, "heartbeats while the database is down")
        finally:
            proc = cluster._pg_ctl("start", "-w", "-l", str(cluster.logfile))
            assert proc.returncode == 0, proc.stderr
        deadline = time.monotonic() + 15
        while (status := post(b, b"after")[0]) == 503:  # B's pump reconnects by itself
            assert time.monotonic() < deadline, "B never reconnected"
            time.sleep(0.1)
        assert status == 202
        more = [published(b, b"after %d" % n) for n in range(5)]  # A may not be LISTENing again yet
        sub.wait(lambda: len(sub.messages()) == 7, "the messages published after the restart", timeout=15)
        ids = [i for i, _ in sub.messages()]
        assert ids == list(range(before, before + 7)) and ids[-1] == more[-1]
        assert not sub.closed
        sub.close()


def test_a_thousand_subscribers_over_two_instances_get_fifty_broadcasts_once_in_order(two: tuple[int, int]) -> None:
    ports = two
    herd: list[socket.socket] = []
    raw: dict[int, bytes] = {}
    try:
        with selectors.DefaultSelector() as sel:
            for n in range(1000):
                sock = socket.create_connection(("127.0.0.1", ports[n % 2]), timeout=10)
                sock.sendall(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
                sock.setblocking(False)
                herd.append(sock)
                raw[n] = b""
                sel.register(sock, selectors.EVENT_READ, n)

            def pump(until: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
                deadline = time.monotonic() + timeout
                while not until():
                    assert time.monotonic() < deadline, what
                    for key, _ in sel.select(0.1):
                        data = key.fileobj.recv(1 << 16)  # type: ignore[union-attr]
                        assert data, f"subscriber {key.data} was closed"
                        raw[key.data] += data

            pump(lambda: all(b"event: hello" in r for r in raw.values()), "every subscriber said hello")
            ids = [published(ports[n % 2], b"b%d" % n) for n in range(50)]
            pump(lambda: all(r.count(b"\nid: ") >= 50 for r in raw.values()), "every broadcast everywhere")
            time.sleep(0.2)
            pump(lambda: True, "")
            for n, stream in raw.items():
                got = [(int(m[2]), m[3].decode()) for m in EVENT.finditer(stream)]
                assert got == [(i, f"b{k}") for k, i in enumerate(ids)], f"subscriber {n}"
    finally:
        for sock in herd:
            sock.close()


# -- in one worker, and across the workers of one host -----------------------------------------------------
def test_worker_bus_replays_from_memory_and_resets_past_it() -> None:
    def make_state() -> Hub:
        return Hub(WorkerBus(), ring=10, heartbeat=5)

    cfg = make_config(Settings(bus="worker", heartbeat=5)).with_(make_state=make_state)
    with serve(cfg) as server:
        first = Stream(server.port)
        ids = [published(server.port, b"m%d" % n) for n in range(15)]
        assert ids == list(range(1, 16))
        first.wait(lambda: len(first.messages()) == 15, "15 messages")
        first.close()
        again = Stream(server.port, last_id=12)
        again.wait(lambda: len(again.messages()) == 3, "the three after 12")
        assert again.messages() == [(13, "m12"), (14, "m13"), (15, "m14")] and again.events[0][0] == "message"
        published(server.port, b"m15")
        again.wait(lambda: len(again.messages()) == 4, "the live one")
        old = Stream(server.port, last_id=2)  # the ring holds 7..16
        old.wait(lambda: len(old.messages()) == 10, "the ring")
        assert old.events[0] == ("reset", 6, '{"since": 2, "oldest": 7}')
        assert [i for i, _ in old.messages()] == list(range(7, 17))
        again.close()
        old.close()
        with pytest.raises(ChannelError):
            server.worker.state.channel("no spaces")  # type: ignore[union-attr]


def test_host_bus_workers_share_ids_and_replay(tmp_path: Path) -> None:
    with ServerProcess("-m", "examples.sse", "--port", "0", "--workers", "2", "--bus", "host",
                       env={"SSE_HEARTBEAT": "5"}, drop_env=["DATABASE_URL"], cwd=ROOT) as proc:
        port = proc.port()
        for n in range(2):
            proc.wait_for(rf"receives broadcasts on")
        time.sleep(0.2)
        subs = [Stream(port) for _ in range(8)]
        ids = [published(port, b"h%d" % n) for n in range(10)]
        assert ids == list(range(1, 11))  # one counter for both workers
        for sub in subs:
            sub.wait(lambda: len(sub.messages()) == 10, "ten messages")
            assert sub.messages() == [(i, f"h{i - 1}") for i in ids]
            sub.close()
        late = [Stream(port, last_id=7) for _ in range(6)]  # whichever worker they land on
        for sub in late:
            sub.wait(lambda: len(sub.messages()) == 3, "the three after 7")
            assert [i for i, _ in sub.messages()] == [8, 9, 10]
            sub.close()
        assert proc.stop() == 0


# -- the fast path ----------------------------------------------------------------------------------------
def test_the_fast_path_resumes_no_generator_per_subscriber() -> None:
    resumes = [0]

    def counting(gen: Generator[Token, Any, None]) -> Generator[Token, Any, None]:
        """Forwards to ``gen`` and counts every time the reactor resumes it."""
        token = next(gen)
        while True:
            try:
                value = yield token
            except BaseException as exc:
                resumes[0] += 1
                try:
                    token = gen.throw(exc)
                except StopIteration:
                    return
                continue
            resumes[0] += 1
            try:
                token = gen.send(value)
            except StopIteration:
                return

    base = make_config(Settings(bus="worker", heartbeat=60))

    def handler(req: Request, out: bytearray) -> Any:
        result = base.handler(req, out)
        if req.path == b"/events" and isinstance(result, Generator):
            return counting(result)
        return result

    cfg: ServerConfig = base.with_(handler=handler)
    with serve(cfg) as server:
        subs = [Stream(server.port) for _ in range(50)]
        time.sleep(0.1)  # every stream parked after its hello
        settled = resumes[0]
        for n in range(20):
            published(server.port, b"fast %d" % n)
        for sub in subs:
            sub.wait(lambda: len(sub.messages()) == 20, "20 messages")
        assert resumes[0] == settled, f"{resumes[0] - settled} generator resumes for 20 broadcasts to 50 streams"
        hub = server.worker.state  # type: ignore[union-attr]
        assert isinstance(hub, Hub) and hub.channel("broadcast").direct_writes == 20 * 50
        for sub in subs:
            sub.close()


def test_queue_subscription_in_a_handler() -> None:
    hub = Hub(WorkerBus(), ring=4)
    channel = hub.channel("q")

    def run(gen: Generator[Token, Any, Any]) -> Any:
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            return stop.value

    for n in range(6):
        assert run(channel.publish(f"x{n}")) == n + 1
    sub = run(channel.subscribe(since=3))
    assert list(sub.queue) == [Message(4, "x3"), Message(5, "x4"), Message(6, "x5")]
    run(channel.publish("x6"))
    assert sub.queue[-1] == Message(7, "x6")
    sub.close()
    assert len(channel) == 0
