"""The WebSocket codec (`vanilla_async._core.wscodec`, `wsdeflate`): every RFC 6455 / RFC 7692 rule as a
table, payload-size edges, and differential tests against wsproto and websockets (their client side
produces the frames we read and reads the frames we write), plus one echo over a real socket."""

from __future__ import annotations

import base64
import os
import socket
import threading
import zlib
from collections.abc import Iterator

import h11
import pytest
import wsproto.events as wse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.extensions import PerMessageDeflate

from vanilla_async._core import wscodec as wc
from vanilla_async._core.wsdeflate import (
    DeflateOptions,
    DeflateParams,
    broadcast_frame,
    negotiate,
)
from vanilla_async.errors import VanillaError, WebSocketError
from vanilla_async.testing import make_request

MASK = b"\x37\xfa\x21\x3d"


def client_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, mask: bytes | None = MASK,
                 length: bytes | None = None) -> bytes:
    """A client frame built straight from RFC 6455 §5.2 (independent of the codec under test)."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if length is None:
        length = bytes([n]) if n < 126 else bytes([126]) + n.to_bytes(2, "big") if n < 65536 else bytes([127]) + n.to_bytes(8, "big")
    head = bytes([b0, length[0] | (0x80 if mask else 0)]) + length[1:]
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_all(data: bytes, **kw: object) -> list[wc.Event]:
    return wc.FrameReader(**kw).feed(data)  # type: ignore[arg-type]


# -- error table ----------------------------------------------------------------------------------
BAD = [
    ("unmasked client frame", client_frame(1, b"hi", mask=None), 1002),
    ("RSV1 without deflate", client_frame(1, b"hi", rsv=4), 1002),
    ("RSV2", client_frame(2, b"hi", rsv=2), 1002),
    ("RSV3", client_frame(2, b"hi", rsv=1), 1002),
    ("opcode 3", client_frame(3, b""), 1002),
    ("opcode 7", client_frame(7, b""), 1002),
    ("opcode 0xB", client_frame(0xB, b""), 1002),
    ("opcode 0xF", client_frame(0xF, b""), 1002),
    ("fragmented ping", client_frame(9, b"x", fin=False), 1002),
    ("fragmented close", client_frame(8, b"\x03\xe8", fin=False), 1002),
    ("ping of 126 bytes", client_frame(9, b"x" * 126), 1002),
    ("pong of 126 bytes", client_frame(10, b"x" * 126), 1002),
    ("continuation without start", client_frame(0, b"x"), 1002),
    ("new text inside a message", client_frame(1, b"a", fin=False) + client_frame(1, b"b"), 1002),
    ("new binary inside a message", client_frame(2, b"a", fin=False) + client_frame(2, b"b"), 1002),
    ("non-minimal 16-bit length", client_frame(2, b"x" * 10, length=b"\x7e\x00\x0a"), 1002),
    ("non-minimal 64-bit length", client_frame(2, b"x" * 200, length=b"\x7f" + (200).to_bytes(8, "big")), 1002),
    ("64-bit length top bit", client_frame(2, b"", length=b"\x7f" + (1 << 63).to_bytes(8, "big")), 1002),
    ("invalid UTF-8", client_frame(1, b"\xff"), 1007),
    ("UTF-8 surrogate", client_frame(1, b"\xed\xa0\x80"), 1007),
    ("invalid UTF-8 split across fragments",
     client_frame(1, b"ok\xce", fin=False) + client_frame(0, b"\x41"), 1007),
    ("incomplete UTF-8 at the end of the message",
     client_frame(1, b"ok", fin=False) + client_frame(0, b"\xe2\x82"), 1007),
    ("close with a 1-byte payload", client_frame(8, b"\x03"), 1002),
    ("close code 999", client_frame(8, (999).to_bytes(2, "big")), 1002),
    ("close code 1004", client_frame(8, (1004).to_bytes(2, "big")), 1002),
    ("close code 1005", client_frame(8, (1005).to_bytes(2, "big")), 1002),
    ("close code 1006", client_frame(8, (1006).to_bytes(2, "big")), 1002),
    ("close code 1012", client_frame(8, (1012).to_bytes(2, "big")), 1002),
    ("close code 1015", client_frame(8, (1015).to_bytes(2, "big")), 1002),
    ("close code 2999", client_frame(8, (2999).to_bytes(2, "big")), 1002),
    ("close code 5000", client_frame(8, (5000).to_bytes(2, "big")), 1002),
    ("close reason not UTF-8", client_frame(8, b"\x03\xe8\xff"), 1007),
]


@pytest.mark.parametrize(("name", "data", "code"), BAD, ids=[b[0] for b in BAD])
def test_violation_has_its_close_code(name: str, data: bytes, code: int) -> None:
    with pytest.raises(WebSocketError) as info:
        read_all(data)
    assert info.value.code == code
    assert isinstance(info.value, VanillaError)
    # the same verdict whatever the split: byte by byte
    reader = wc.FrameReader()
    with pytest.raises(WebSocketError) as info2:
        for i in range(len(data)):
            reader.feed(data[i:i + 1])
    assert info2.value.code == code


def test_violation_is_caught_before_the_payload_arrives() -> None:
    # the header alone says it all: no need to buffer the (claimed) 1 MiB
    head = client_frame(2, b"", mask=None, length=b"\x7f" + (1 << 20).to_bytes(8, "big"))
    with pytest.raises(WebSocketError) as info:
        wc.FrameReader().feed(head)
    assert info.value.code == 1002


@pytest.mark.parametrize(("limit_kw", "data"), [
    ({"max_frame": 100}, client_frame(2, b"x" * 101)),
    ({"max_message": 100}, client_frame(2, b"x" * 60, fin=False) + client_frame(0, b"x" * 41)),
    ({"max_message": 100}, client_frame(1, b"x" * 101)),
])
def test_limits_are_1009(limit_kw: dict[str, int], data: bytes) -> None:
    with pytest.raises(WebSocketError) as info:
        read_all(data, **limit_kw)
    assert info.value.code == 1009


def test_limits_allow_exactly_the_limit() -> None:
    data = client_frame(2, b"x" * 60, fin=False) + client_frame(0, b"x" * 40)
    assert read_all(data, max_frame=60, max_message=100) == [wc.Message(data=b"x" * 100)]


# -- good frames ----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 1 << 20])
def test_payload_sizes(size: int) -> None:
    payload = os.urandom(size)
    data = client_frame(2, payload) + client_frame(1, b"a" * size)
    assert read_all(data) == [wc.Message(data=payload), wc.Message(text="a" * size)]
    # our encoder's header for the same size, as a wsproto client reads it
    client = open_wsproto_client()
    client.receive_data(wc.encode_binary(payload))
    got = [e for e in client.events() if isinstance(e, wse.BytesMessage)]
    assert b"".join(e.data for e in got) == payload and got[-1].message_finished
    if size >= 126:
        chunks = [data[i:i + 4096] for i in range(0, len(data), 4096)]
        reader = wc.FrameReader()
        events = [e for c in chunks for e in reader.feed(c)]
        assert events == [wc.Message(data=payload), wc.Message(text="a" * size)]


def test_control_frames_and_fragments_interleave() -> None:
    data = (client_frame(1, "hé".encode()[:2], fin=False) + client_frame(9, b"p1") + client_frame(0, "hé".encode()[2:], fin=False)
            + client_frame(10, b"") + client_frame(0, b"!") + client_frame(8, b"\x03\xe8bye") + client_frame(2, b"ignored"))
    reader = wc.FrameReader()
    events = [e for i in range(len(data)) for e in reader.feed(data[i:i + 1])]
    assert events == [wc.Ping(b"p1"), wc.Pong(b""), wc.Message(text="hé!"), wc.Close(1000, "bye")]
    assert reader.closed and reader.feed(client_frame(2, b"more")) == []


@pytest.mark.parametrize(("payload", "event"), [
    (b"", wc.Close(1005, "")),
    (b"\x03\xe8", wc.Close(1000, "")),
    ((1011).to_bytes(2, "big") + "ünïcode".encode(), wc.Close(1011, "ünïcode")),
    ((3000).to_bytes(2, "big"), wc.Close(3000, "")),
    ((4999).to_bytes(2, "big"), wc.Close(4999, "")),
])
def test_close_payloads(payload: bytes, event: wc.Close) -> None:
    assert read_all(client_frame(8, payload)) == [event]


def test_zero_mask_and_unmask_agrees_with_reference() -> None:
    for n in (0, 1, 3, 4, 5, 511, 512, 513, 4097):
        data = os.urandom(n)
        for mask in (MASK, b"\0\0\0\0", b"\xff\xff\xff\xff"):
            assert wc.unmask(data, mask) == bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def test_encode_close_truncates_on_a_utf8_boundary() -> None:
    frame = wc.encode_close(1001, "€" * 100)  # 3 bytes each: 41 fit in 123
    assert frame[1] == 2 + 123 and frame[4:].decode() == "€" * 41
    frame = wc.encode_close(1001, "a" + "€" * 100)  # 1 + 3k: 123 = 1 + 3*40 + 2 → cut to 121
    assert frame[4:].decode() == "a" + "€" * 40
    assert wc.encode_close(None) == b"\x88\x00"
    with pytest.raises(ValueError):
        wc.encode_close(1005)
    with pytest.raises(ValueError):
        wc.encode_ping(b"x" * 126)
    with pytest.raises(ValueError):
        wc.encode_frame(3, b"")


# -- wsproto as the client ------------------------------------------------------------------------
def handshake_wsproto(deflate: DeflateOptions | None, ext: PerMessageDeflate | None = None,
                      subprotocols: list[str] | None = None, server_subprotocols: tuple[str, ...] = ()
                      ) -> tuple[WSConnection, wc.Accept]:
    client = WSConnection(ConnectionType.CLIENT)
    raw = client.send(wse.Request(host="localhost", target="/ws", extensions=[ext] if ext else [],
                                  subprotocols=subprotocols or []))
    result = wc.check_upgrade(make_request(raw), deflate=deflate, subprotocols=server_subprotocols)
    assert isinstance(result, wc.Accept), result
    client.receive_data(result.response())
    events = list(client.events())
    assert len(events) == 1 and isinstance(events[0], wse.AcceptConnection), events
    return client, result


def open_wsproto_client() -> WSConnection:
    return handshake_wsproto(None)[0]


def test_handshake_response_is_valid_http_and_wsproto_accepts_it() -> None:
    _client, accept = handshake_wsproto(DeflateOptions(), PerMessageDeflate(), ["b", "a"], ("a", "b"))
    assert accept.subprotocol == "a" and accept.deflate_params is not None
    h = h11.Connection(h11.CLIENT)
    h.send(h11.Request(method="GET", target="/ws", headers=[("Host", "x"), ("Upgrade", "websocket"),
                                                           ("Connection", "Upgrade")]))
    h.send(h11.EndOfMessage())
    h.receive_data(accept.response())
    event = h.next_event()
    assert isinstance(event, h11.InformationalResponse) and event.status_code == 101
    headers = {k.lower(): v for k, v in event.headers}
    assert headers[b"sec-websocket-accept"] == accept.accept_key.encode()
    assert h.our_state is h11.SWITCHED_PROTOCOL
    # RFC 6455 §1.3's worked example
    assert wc.accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


messages = st.lists(
    st.tuples(st.booleans(), st.lists(st.binary(max_size=300) | st.text(max_size=100), min_size=1, max_size=4),
              st.booleans()),
    min_size=1, max_size=6,
)


def _client_bytes(client: WSConnection, msgs: list[tuple[bool, list[bytes | str], bool]]) -> tuple[bytes, list[wc.Event]]:
    out = b""
    expected: list[wc.Event] = []
    for is_text, parts, ping in msgs:
        pieces = [p if isinstance(p, str) else p.decode("latin-1") for p in parts] if is_text else \
            [p if isinstance(p, bytes) else p.encode() for p in parts]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            out += client.send(wse.TextMessage(piece, message_finished=last) if is_text  # type: ignore[arg-type]
                               else wse.BytesMessage(piece, message_finished=last))  # type: ignore[arg-type]
            if ping and i == 0 and not last:
                out += client.send(wse.Ping(b"in-between"))
                expected.append(wc.Ping(b"in-between"))
        expected.append(wc.Message(text="".join(pieces)) if is_text else wc.Message(data=b"".join(pieces)))  # type: ignore[arg-type]
    out += client.send(wse.CloseConnection(code=1000, reason="done"))
    expected.append(wc.Close(1000, "done"))
    return out, expected


def _split(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    prev = 0
    for p in points + [len(data)]:
        yield data[prev:p]
        prev = p


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msgs=messages, cuts=st.lists(st.integers(min_value=0), max_size=12), deflate=st.booleans(),
       nct=st.booleans())
def test_reader_matches_wsproto_client_whatever_the_split(
        msgs: list[tuple[bool, list[bytes | str], bool]], cuts: list[int], deflate: bool, nct: bool) -> None:
    ext = PerMessageDeflate(client_no_context_takeover=nct) if deflate else None
    client, accept = handshake_wsproto(DeflateOptions() if deflate else None, ext)
    assert (accept.deflate_params is not None) == deflate
    data, expected = _client_bytes(client, msgs)
    reader = wc.FrameReader(deflate=accept.deflate_params)
    got = [e for chunk in _split(data, cuts) for e in reader.feed(chunk)]
    assert got == expected


@settings(max_examples=60, deadline=None)
@given(msgs=st.lists(st.binary(max_size=2000) | st.text(max_size=500), min_size=1, max_size=6), deflate=st.booleans(),
       server_nct=st.booleans(), fragment=st.integers(min_value=1, max_value=700))
def test_wsproto_client_reads_our_frames(msgs: list[bytes | str], deflate: bool, server_nct: bool, fragment: int) -> None:
    opts = DeflateOptions(server_no_context_takeover=server_nct) if deflate else None
    client, accept = handshake_wsproto(opts, PerMessageDeflate() if deflate else None)
    deflater = accept.deflate_params.deflater() if accept.deflate_params else None
    wire = b""
    for m in msgs:
        opcode, payload = (wc.OP_TEXT, m.encode()) if isinstance(m, str) else (wc.OP_BINARY, m)
        if deflater is not None:
            wire += deflater.frame(opcode, payload)
        else:  # uncompressed, fragmented every `fragment` bytes
            chunks = [payload[i:i + fragment] for i in range(0, len(payload), fragment)] or [b""]
            for i, chunk in enumerate(chunks):
                wire += wc.encode_frame(opcode if i == 0 else wc.OP_CONT, chunk, fin=i == len(chunks) - 1)
                if i == 0:
                    wire += wc.encode_ping(b"hb")
    wire += wc.encode_close(1000, "bye")
    client.receive_data(wire)
    got: list[bytes | str] = []
    buf: list[bytes | str] = []
    closed = None
    for e in client.events():
        if isinstance(e, wse.Message):
            buf.append(e.data)
            if e.message_finished:
                got.append("".join(buf) if isinstance(e.data, str) else b"".join(buf))  # type: ignore[arg-type]
                buf = []
        elif isinstance(e, wse.CloseConnection):
            closed = (e.code, e.reason)
    assert got == msgs and closed == (1000, "bye")


def test_broadcast_frame_is_readable_by_every_no_context_takeover_client() -> None:
    opts = DeflateOptions(server_no_context_takeover=True)
    frame = broadcast_frame(wc.OP_TEXT, b"tick " * 100, window_bits=9)
    for _ in range(3):
        client, accept = handshake_wsproto(opts, PerMessageDeflate())
        assert accept.deflate_params and accept.deflate_params.server_no_context_takeover
        own = accept.deflate_params.deflater()
        client.receive_data(own.frame(wc.OP_TEXT, b"own " * 50) + frame + own.frame(wc.OP_TEXT, b"own " * 50) + frame)
        texts = [e.data for e in client.events() if isinstance(e, wse.TextMessage)]
        assert texts == ["own " * 50, "tick " * 100, "own " * 50, "tick " * 100]


# -- permessage-deflate specifics -----------------------------------------------------------------
def _pm_frame(compressed: bytes, opcode: int = 2) -> bytes:
    return client_frame(opcode, compressed, rsv=4)


def _compress(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_zip_bomb_is_1009_without_inflating_it_all() -> None:
    params = DeflateParams(False, False, 15, 15)
    bomb = _compress(b"\0" * (50 << 20))  # 50 MiB of zeros in ~50 KiB
    assert len(bomb) < 100_000
    with pytest.raises(WebSocketError) as info:
        wc.FrameReader(deflate=params, max_message=1 << 20).feed(_pm_frame(bomb))
    assert info.value.code == 1009


@pytest.mark.parametrize(("data", "code"), [
    (_pm_frame(b"\xff\xff\xff"), 1007),  # not deflate data
    (client_frame(2, b"x", fin=False) + client_frame(0, b"y", rsv=4), 1002),  # RSV1 on a continuation
    (client_frame(9, b"", rsv=4), 1002),  # RSV1 on a control frame
    (_pm_frame(_compress(b"\xff\xfe"), opcode=1), 1007),  # compressed invalid UTF-8
])
def test_deflate_violations(data: bytes, code: int) -> None:
    with pytest.raises(WebSocketError) as info:
        wc.FrameReader(deflate=DeflateParams(False, False, 15, 15)).feed(data)
    assert info.value.code == code


def test_compressed_message_fragmented_and_with_bfinal() -> None:
    comp = _compress(b"hello " * 1000)
    data = client_frame(1, comp[:5], rsv=4, fin=False) + client_frame(0, comp[5:])
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    final = c.compress(b"bye") + c.flush(zlib.Z_FINISH)  # BFINAL block: allowed (RFC 7692 §7.2.3.4)
    data += _pm_frame(final, opcode=1) + _pm_frame(_compress(b"again"), opcode=2)
    got = read_all(data, deflate=DeflateParams(False, False, 15, 15))
    assert got == [wc.Message(text="hello " * 1000), wc.Message(text="bye"), wc.Message(data=b"again")]


def test_bfinal_mid_message_allows_only_the_tail() -> None:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    final = c.compress(b"bye") + c.flush(zlib.Z_FINISH)
    params = DeflateParams(False, False, 15, 15)
    ok = client_frame(1, final, rsv=4, fin=False) + client_frame(0, b"")
    assert read_all(ok, deflate=params) == [wc.Message(text="bye")]
    with pytest.raises(WebSocketError) as info:
        read_all(client_frame(1, final, rsv=4, fin=False) + client_frame(0, b"xx"), deflate=params)
    assert info.value.code == 1007


def test_message_in_one_byte_pieces() -> None:
    payload = os.urandom(70_000)
    data = client_frame(2, payload[:30_000], fin=False) + client_frame(9, b"") + client_frame(0, payload[30_000:])
    reader = wc.FrameReader()
    events = [e for i in range(len(data)) for e in reader.feed(data[i:i + 1])]
    assert events == [wc.Ping(b""), wc.Message(data=payload)]


@pytest.mark.parametrize(("offer", "expected"), [
    (b"permessage-deflate", b"permessage-deflate"),
    (b"permessage-deflate; client_max_window_bits", b"permessage-deflate; client_max_window_bits=12"),
    (b"permessage-deflate; client_max_window_bits=10", b"permessage-deflate; client_max_window_bits=10"),
    (b'permessage-deflate; server_max_window_bits="10"', b"permessage-deflate; server_max_window_bits=10"),
    (b"permessage-deflate; server_max_window_bits=15; server_no_context_takeover",
     b"permessage-deflate; server_no_context_takeover; server_max_window_bits=12"),
    (b"permessage-deflate; client_no_context_takeover", b"permessage-deflate; client_no_context_takeover"),
    # declined offers fall through to the next one
    (b"permessage-deflate; server_max_window_bits, permessage-deflate", b"permessage-deflate"),
    (b"permessage-deflate; server_max_window_bits=8, permessage-deflate", b"permessage-deflate"),
    (b"permessage-deflate; server_max_window_bits=010, permessage-deflate", b"permessage-deflate"),
    (b"permessage-deflate; client_max_window_bits=16, permessage-deflate", b"permessage-deflate"),
    (b"permessage-deflate; server_no_context_takeover=1, permessage-deflate", b"permessage-deflate"),
    (b"permessage-deflate; client_no_context_takeover; client_no_context_takeover, permessage-deflate",
     b"permessage-deflate"),
    (b"permessage-deflate; foo, permessage-deflate", b"permessage-deflate"),
    (b'x-other; a="1,2", permessage-deflate', b"permessage-deflate"),
    (b"permessage-deflate; server_max_window_bits=8", None),
    (b"x-webkit-deflate-frame", None),
    (b"permessage-deflate; =;", None),
])
def test_negotiation(offer: bytes, expected: bytes | None) -> None:
    params = negotiate([offer], DeflateOptions())
    assert (params.header_value() if params else None) == expected
    assert negotiate([offer], None) is None and negotiate([offer], DeflateOptions(enabled=False)) is None


def test_negotiation_across_header_lines_and_app_flags() -> None:
    opts = DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True, client_max_window_bits=None)
    params = negotiate([b"foo", b"permessage-deflate; client_max_window_bits"], opts)
    assert params is not None
    assert params.header_value() == b"permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    assert params.client_max_window_bits == 15


# -- handshake rejections -------------------------------------------------------------------------
KEY = base64.b64encode(b"0123456789abcdef").decode()


def upgrade_request(*, method: str = "GET", version: str = "1.1", drop: tuple[str, ...] = (),
                    **over: str) -> bytes:
    headers = {"Host": "x", "Upgrade": "websocket", "Connection": "keep-alive, Upgrade",
               "Sec-WebSocket-Key": KEY, "Sec-WebSocket-Version": "13",
               "Origin": "https://good.example"}
    headers.update({k.replace("_", "-"): v for k, v in over.items()})
    lines = [f"{method} /ws HTTP/{version}"] + [f"{k}: {v}" for k, v in headers.items() if k not in drop]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(("raw", "status"), [
    (upgrade_request(method="POST"), 400),
    (upgrade_request(version="1.0"), 400),
    (upgrade_request(drop=("Upgrade",)), 400),
    (upgrade_request(Upgrade="h2c"), 400),
    (upgrade_request(Connection="keep-alive"), 400),
    (upgrade_request(drop=("Sec-WebSocket-Key",)), 400),
    (upgrade_request(Sec_WebSocket_Key="c2hvcnQ="), 400),  # 5 bytes
    (upgrade_request(Sec_WebSocket_Key="not base64!!"), 400),
    (upgrade_request(drop=("Sec-WebSocket-Version",)), 400),
    (upgrade_request(Sec_WebSocket_Version="8"), 426),
    (upgrade_request(Sec_WebSocket_Protocol="chat, bad token("), 400),
    (upgrade_request(Origin="https://evil.example"), 403),
    (upgrade_request(drop=("Origin",)), 403),  # no Origin while origins are restricted
])
def test_rejections(raw: bytes, status: int) -> None:
    result = wc.check_upgrade(make_request(raw), origins={"https://good.example"})
    assert isinstance(result, wc.Reject) and result.status == status, result
    if status == 426:
        assert (b"Sec-WebSocket-Version", b"13") in result.headers
    h = h11.Connection(h11.CLIENT)
    h.send(h11.Request(method="GET", target="/ws", headers=[("Host", "x")]))
    h.receive_data(result.response())
    response = h.next_event()
    assert isinstance(response, h11.Response) and response.status_code == status


def test_accepted_variants() -> None:
    raw = upgrade_request(Upgrade="WebSocket", Connection="Upgrade", Origin="https://GOOD.example",
                          Sec_WebSocket_Protocol="v1.chat, Sub")
    result = wc.check_upgrade(make_request(raw), origins={"https://good.example"}, subprotocols=("sub", "Sub"))
    assert isinstance(result, wc.Accept) and result.subprotocol == "Sub" and result.deflate_params is None


# -- websockets as the client, over a real socket -------------------------------------------------
def _echo_server(listener: socket.socket, errors: list[BaseException]) -> None:
    try:
        conn, _ = listener.accept()
        conn.settimeout(5)
        with conn:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            end = head.index(b"\r\n\r\n") + 4
            accept = wc.check_upgrade(make_request(head[:end]), deflate=DeflateOptions())
            assert isinstance(accept, wc.Accept)
            conn.sendall(accept.response())
            reader = wc.FrameReader(deflate=accept.deflate_params)
            deflater = accept.deflate_params.deflater() if accept.deflate_params else None
            pending = head[end:]
            for _ in range(1000):
                for event in reader.feed(pending):
                    if isinstance(event, wc.Message):
                        op, payload = (wc.OP_TEXT, event.text.encode()) if event.text is not None else (wc.OP_BINARY, event.data or b"")
                        conn.sendall(deflater.frame(op, payload) if deflater else wc.encode_frame(op, payload))
                    elif isinstance(event, wc.Ping):
                        conn.sendall(wc.encode_pong(event.payload))
                    elif isinstance(event, wc.Close):
                        conn.sendall(wc.encode_close(event.code if event.code != 1005 else None))
                        return
                pending = conn.recv(65536)
                if not pending:
                    return
    except BaseException as exc:  # reported to the test thread  # noqa: BLE001
        errors.append(exc)


def test_websockets_client_echo_over_a_real_socket() -> None:
    from websockets.sync.client import connect

    listener = socket.create_server(("127.0.0.1", 0))
    errors: list[BaseException] = []
    thread = threading.Thread(target=_echo_server, args=(listener, errors), daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5, close_timeout=5) as ws:
            assert ws.response is not None
            assert ws.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
            ws.send("héllo " * 1000)
            assert ws.recv(timeout=5) == "héllo " * 1000
            blob = os.urandom(200_000)
            ws.send(blob)
            assert ws.recv(timeout=5) == blob
            ws.send(["frag", "mented"])  # a fragmented message
            assert ws.recv(timeout=5) == "fragmented"
            ws.ping(b"hi").wait(5)
    finally:
        thread.join(10)
        listener.close()
    assert not thread.is_alive() and not errors, errors


def test_websockets_sans_io_client_frames() -> None:
    from websockets.client import ClientProtocol
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    from websockets.protocol import State
    from websockets.uri import parse_uri

    proto = ClientProtocol(parse_uri("ws://localhost/ws"), extensions=[ClientPerMessageDeflateFactory()])
    proto.send_request(proto.connect())
    raw = b"".join(proto.data_to_send())
    accept = wc.check_upgrade(make_request(raw), deflate=DeflateOptions())
    assert isinstance(accept, wc.Accept)
    proto.receive_data(accept.response())
    assert proto.state is State.OPEN, proto.handshake_exc
    proto.send_text(b"a" * 5000, fin=False)
    proto.send_continuation(b"b" * 10, fin=True)
    proto.send_binary(bytes(range(256)) * 10)
    proto.send_close(4000, "app")
    wire = b"".join(proto.data_to_send())
    reader = wc.FrameReader(deflate=accept.deflate_params)
    events = [e for i in range(0, len(wire), 7) for e in reader.feed(wire[i:i + 7])]
    assert events == [wc.Message(text="a" * 5000 + "b" * 10), wc.Message(data=bytes(range(256)) * 10),
                      wc.Close(4000, "app")]
