from __future__ import annotations

import pytest

BACKENDS = ["epoll", "selectors"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every end-to-end test runs once per reactor backend."""
    return str(request.param)
