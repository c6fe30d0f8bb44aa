"""examples.video_stream over real sockets: 200, 206 seeks from the middle, 416, If-Range, sendfile."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

from examples.video_stream import VIDEO_SIZE, clip_bytes, config, handler
from vanilla_async import Request, ServerConfig
from vanilla_async.static import FileBody, file_handler
from vanilla_async.testing import Client, ServerProcess, serve


def get(*headers: bytes, target: bytes = b"/video/clip.mp4", method: bytes = b"GET") -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\nHost: t\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def test_whole_file_and_seeks() -> None:
    with serve(config) as server:
        client = server.connect(timeout=10)
        client.send(get())
        whole = client.read_response()
        client.send(get(b"Range: bytes=3000000-"))
        middle = client.read_response()
        client.send(get(b"Range: bytes=4194304-4259839"))
        window = client.read_response()
        client.send(get(b"Range: bytes=-1000"))
        tail = client.read_response()
        client.send(get(b"Range: bytes=%d-" % VIDEO_SIZE))
        beyond = client.read_response()
        client.send(get(b"Range: bytes=100-", b'If-Range: "stale"'))
        stale = client.read_response()
        client.send(get(target=b"/"))
        page = client.read_response()
    assert whole.status == 200 and whole.header("accept-ranges") == b"bytes" and whole.body == clip_bytes(0, VIDEO_SIZE)
    assert whole.header("content-type") == b"video/mp4"
    assert middle.status == 206 and middle.body == clip_bytes(3000000, VIDEO_SIZE)
    assert middle.header("content-range") == b"bytes 3000000-%d/%d" % (VIDEO_SIZE - 1, VIDEO_SIZE)
    assert middle.header("content-length") == str(VIDEO_SIZE - 3000000).encode()
    assert window.status == 206 and window.body == clip_bytes(4194304, 4259840)
    assert window.header("content-range") == b"bytes 4194304-4259839/%d" % VIDEO_SIZE
    assert tail.body == clip_bytes(VIDEO_SIZE - 1000, VIDEO_SIZE)
    assert beyond.status == 416 and beyond.header("content-range") == b"bytes */%d" % VIDEO_SIZE
    assert stale.status == 200 and len(stale.body) == VIDEO_SIZE
    assert page.status == 200 and b"<video" in page.body


def test_bodies_leave_as_file_bodies_even_to_a_slow_reader() -> None:
    kinds: list[str] = []

    def recording(req: Request, out: bytearray) -> FileBody | None:
        result = handler(req, out)
        kinds.append(type(result).__name__)
        return result

    with serve(ServerConfig(handler=file_handler(recording))) as server:
        client = server.connect(timeout=10)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        client.send(get(b"Range: bytes=1000-") + get(b"Range: bytes=0-99"))
        time.sleep(0.2)  # not reading yet: the server waits for writability
        first = client.read_response()
        second = client.read_response()
        client.send(get(method=b"HEAD"))
        head = client.read_response(b"HEAD")
    assert kinds == ["FileBody", "FileBody", "NoneType"]  # HEAD: the head alone
    assert first.body == clip_bytes(1000, VIDEO_SIZE) and second.body == clip_bytes(0, 100)
    assert head.header("content-length") == str(VIDEO_SIZE).encode() and head.body == b""


def test_as_a_process_with_curl() -> None:
    with ServerProcess("-m", "examples.video_stream", "--port", "0", "--workers", "2") as proc:
        port = proc.port()
        with Client(("127.0.0.1", port), timeout=10) as client:
            client.send(get(b"Range: bytes=5000000-5000009"))
            r = client.read_response()
            assert r.status == 206 and r.body == clip_bytes(5000000, 5000010)
        curl = shutil.which("curl")
        if curl is not None:
            done = subprocess.run([curl, "-s", "-r", "6000000-", "--max-time", "10", f"http://127.0.0.1:{port}/video/clip.mp4"],
                                  capture_output=True, timeout=15)
            assert done.stdout == clip_bytes(6000000, VIDEO_SIZE)
        assert proc.stop() == 0
