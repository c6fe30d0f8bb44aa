from __future__ import annotations

import pytest

BACKENDS = ["epoll", "selectors"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every end-to-end test runs once per reactor backend."""
    return str(request.param)


# --- PostgreSQL: one throwaway cluster per test session (vanilla_async.pgcluster) ---------------

import os
from typing import Iterator

from vanilla_async.pgcluster import PgClusterError, TemporaryCluster, find_binaries


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[TemporaryCluster]:
    """A started `TemporaryCluster` (database ``vanilla``), shared by the whole session.

    Without PostgreSQL's server programs the test skips, except under ``CI=true`` where it fails:
    CI installs them (scripts/system-deps).
    """
    try:
        find_binaries()
    except PgClusterError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {e}")
        pytest.skip(str(e))
    with TemporaryCluster() as cluster:
        yield cluster


@pytest.fixture
def pg_dsn(pg_cluster: TemporaryCluster) -> str:
    """The session cluster's libpq connection string (unix socket; ``pg_cluster.tcp_dsn`` for TCP)."""
    return pg_cluster.dsn
