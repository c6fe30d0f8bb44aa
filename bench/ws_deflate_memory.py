#!/usr/bin/env python3
"""RSS per live permessage-deflate compressor + decompressor pair, for a few window/memLevel settings
(how the defaults in vanilla_async/_core/wsdeflate.py were chosen). tracemalloc does not see zlib's
own allocations, so this measures the process's RSS, one fresh process per setting.

    python bench/ws_deflate_memory.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vanilla_async._core.wsdeflate import Deflater, DeflateParams  # noqa: E402


def measure(argv: list[str]) -> None:
    """Without arguments: one fresh process per setting (freed memory would hide the next one)."""
    import os
    import subprocess
    import sys

    settings = [(15, 8, 15), (15, 8, 12), (12, 5, 15), (12, 5, 12), (11, 4, 11), (10, 3, 10)]
    if not argv:
        print("RSS per live compressor+decompressor pair (1,000 pairs, one 64 KiB JSON-ish message each: the worst case)")
        for setting in settings:
            subprocess.run([sys.executable, __file__, *map(str, setting)], check=True)
        return

    def rss_kib() -> int:
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    sbits, mem, cbits = map(int, argv)
    import random
    rng = random.Random(7)  # 64 KiB of JSON-ish text: enough to touch the whole window and hash tables
    words = [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(2000)]
    sample = b" ".join(b'{"k": "%s", "v": %d}' % (rng.choice(words), rng.randint(0, 99999)) for _ in range(3000))[:65536]
    n = 1000
    params = DeflateParams(False, False, sbits, cbits, mem_level=mem)
    pairs = []
    before = rss_kib()
    from_client = Deflater(cbits, 8, True).compress(sample)  # what a client with that window sends
    for _ in range(n):
        de, inf = params.deflater(), params.inflater()
        de.compress(sample)
        inf.feed(from_client, 1 << 20, True)
        pairs.append((de, inf))
    after = rss_kib()
    print(f"  server_window_bits={sbits:2} memLevel={mem} client_window_bits={cbits:2}: "
          f"{(after - before) / n:6.1f} KiB/connection")


if __name__ == "__main__":
    import sys as _sys
    measure(_sys.argv[1:])
