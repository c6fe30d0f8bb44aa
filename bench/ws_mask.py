"""Measure pure-Python WebSocket unmasking (RFC 6455 §5.3) on 16 B, 1 KiB, 64 KiB and 1 MiB payloads.

Candidates: wsproto's ``bytes.translate`` over four strided slices, websockets' pure-Python
fallback (one big-int XOR), and the variants considered for ``vanilla_async._core.wscodec.unmask``.
Each result is checked against a byte-by-byte reference before it is timed.

    python bench/ws_mask.py            # prints µs per call, best of 5 repeats
"""

from __future__ import annotations

import functools
import os
import sys
import timeit
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vanilla_async._core.wscodec import unmask

_XOR_TABLE = [bytes(a ^ b for a in range(256)) for b in range(256)]


def reference(data: bytes, mask: bytes) -> bytes:
    return bytes(b ^ mask[i & 3] for i, b in enumerate(data))


def wsproto_translate(data: bytes, mask: bytes) -> bytes:
    """wsproto 1.x ``XorMaskerSimple.process`` (without the key rotation)."""
    arr = bytearray(data)
    a, b, c, d = (_XOR_TABLE[n] for n in mask)
    arr[::4] = arr[::4].translate(a)
    arr[1::4] = arr[1::4].translate(b)
    arr[2::4] = arr[2::4].translate(c)
    arr[3::4] = arr[3::4].translate(d)
    return bytes(arr)


def websockets_int(data: bytes, mask: bytes) -> bytes:
    """websockets' pure-Python ``apply_mask`` fallback."""
    data_int = int.from_bytes(data, sys.byteorder)
    mask_repeated = mask * (len(data) // 4) + mask[: len(data) % 4]
    mask_int = int.from_bytes(mask_repeated, sys.byteorder)
    return (data_int ^ mask_int).to_bytes(len(data), sys.byteorder)


def int_little(data: bytes, mask: bytes) -> bytes:
    """Big-int XOR, little-endian, mask repeated then cut (one allocation fewer than above)."""
    n = len(data)
    return (int.from_bytes(data, "little") ^ int.from_bytes((mask * ((n >> 2) + 1))[:n], "little")).to_bytes(n, "little")


def translate_slices(data: bytes, mask: bytes) -> bytes:
    """Translate the four strided slices of the immutable input, assemble into one bytearray."""
    arr = bytearray(len(data))
    arr[0::4] = data[0::4].translate(_XOR_TABLE[mask[0]])
    arr[1::4] = data[1::4].translate(_XOR_TABLE[mask[1]])
    arr[2::4] = data[2::4].translate(_XOR_TABLE[mask[2]])
    arr[3::4] = data[3::4].translate(_XOR_TABLE[mask[3]])
    return bytes(arr)


CANDIDATES: dict[str, Callable[[bytes, bytes], bytes]] = {
    "wsproto translate": wsproto_translate,
    "websockets int": websockets_int,
    "int little": int_little,
    "translate slices": translate_slices,
    "wscodec.unmask": unmask,
}


def main() -> None:
    mask = b"\x37\xfa\x21\x3d"
    sizes = (16, 1024, 65536, 1 << 20)
    for size in sizes:
        data = os.urandom(size)
        expected = reference(data, mask) if size <= 65536 else None
        print(f"payload {size:>8} B")
        for name, fn in CANDIDATES.items():
            out = fn(data, mask)
            if expected is not None:
                assert out == expected, name
            assert fn(out, mask) == data, name
            number = max(1, 2_000_000 // (size + 200))
            best = min(timeit.repeat(functools.partial(fn, data, mask), number=number, repeat=5)) / number
            print(f"  {name:<18} {best * 1e6:10.2f} µs  ({size / best / 1e6:8.1f} MB/s)")


if __name__ == "__main__":
    main()
