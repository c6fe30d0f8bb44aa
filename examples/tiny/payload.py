"""The ~1 KB JSON document served by ``GET /json`` (also imported by the benchmark's peer apps,
so every server serialises exactly the same object on every request)."""

from __future__ import annotations

PAYLOAD: dict[str, object] = {
    "message": "Hello, World!",
    "server": "vanilla_async",
    "items": [
        {"id": i, "name": f"item-{i:03d}", "price": round(i * 1.25, 2), "tags": ["a", "b", "c"], "active": i % 2 == 0}
        for i in range(12)
    ],
}
