from __future__ import annotations

from typing import Iterator

import pytest

from vanilla_async._core.config import BACKEND_ENV
from vanilla_async.pgcluster import TemporaryCluster
from vanilla_async.testing import TLS_ENV, require_postgres

BACKENDS = ["epoll", "selectors", "trio", "io_uring"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every end-to-end test that takes it runs once per reactor backend."""
    return str(request.param)


@pytest.fixture(params=BACKENDS)
def each_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """For whole modules (``pytestmark = pytest.mark.usefixtures("each_backend")``): every server
    the test starts — `testing.serve` in-process, or `python -m ...` through the CLI — uses this
    backend, via ``$VANILLA_ASYNC_BACKEND``."""
    monkeypatch.setenv(BACKEND_ENV, str(request.param))
    return str(request.param)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[TemporaryCluster]:
    """A started `TemporaryCluster` (database ``vanilla``), shared by the whole session.

    Without PostgreSQL's server programs the test skips, except under ``CI=true`` where it fails:
    CI installs them (scripts/system-deps).
    """
    require_postgres()
    with TemporaryCluster() as cluster:
        yield cluster


@pytest.fixture
def pg_dsn(pg_cluster: TemporaryCluster) -> str:
    """The session cluster's libpq connection string (unix socket; ``pg_cluster.tcp_dsn`` for TCP)."""
    return pg_cluster.dsn


@pytest.fixture(params=["plain", "tls"])
def each_transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """For whole modules (``pytestmark = pytest.mark.usefixtures("each_transport")``): every
    `testing.serve` server runs over cleartext, then over TLS (the test CA's certificate), and its
    `connect()` clients follow. A test of something only cleartext has (a TCP half-close that keeps
    the TLS session readable does not exist in Python's ssl) is marked ``plain_only``."""
    if request.param == "tls":
        if request.node.get_closest_marker("plain_only") is not None:
            pytest.skip("cleartext only: " + str(request.node.get_closest_marker("plain_only").args[0]))
        monkeypatch.setenv(TLS_ENV, "1")
    else:
        monkeypatch.delenv(TLS_ENV, raising=False)
    return str(request.param)
