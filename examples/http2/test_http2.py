"""examples.http2: eight SSE streams tick at once on one HTTP/2 connection (and on HTTP/1.1 too)."""

from __future__ import annotations

import pytest

from examples.http2 import config
from vanilla_async.testing import ServerProcess, serve

pytestmark = pytest.mark.usefixtures("each_backend")


def test_eight_streams_tick_on_one_connection() -> None:
    import h2.config
    import h2.connection
    import h2.events
    import socket

    with serve(config) as server:
        sock = socket.create_connection(server.address, timeout=5)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        conn.initiate_connection()
        ids = []
        for i in range(1, 9):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "t"),
                                    (":path", f"/ticks?n={i}&count=2")], end_stream=True)
            ids.append(sid)
        sock.sendall(conn.data_to_send())
        bodies: dict[int, bytes] = {}
        ended: set[int] = set()
        for _ in range(1000):
            if ended == set(ids):
                break
            data = sock.recv(65536)
            assert data, "the server closed the connection"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    ended.add(event.stream_id)
            sock.sendall(conn.data_to_send())
        sock.close()
        assert ended == set(ids)
        for i, sid in enumerate(ids, 1):
            assert f"data: stream {i} 1\n".encode() in bodies[sid]
        page = server.request(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert page.status == 200 and page.body.count(b"EventSource(") == 1 and b"i <= 8" in page.body


def test_runs_as_a_package() -> None:
    import subprocess

    with ServerProcess("-m", "examples.http2", "--port", "0", cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2])) as proc:
        out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "5",
                              f"http://127.0.0.1:{proc.port()}/ticks?n=3&count=2"], capture_output=True, check=True)
        assert b"data: stream 3 1" in out.stdout
