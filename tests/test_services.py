"""The PostgreSQL and Redis fixtures themselves (tests/conftest.py, tests/services.py)."""

from __future__ import annotations

import socket
from collections.abc import Callable

import psycopg
import pytest

from tests import services


def test_free_port_is_bindable() -> None:
    port = services.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h:5/admin", "postgresql://u@h:5/x"),
        ("postgresql+psycopg://u:p@h/admin?sslmode=require",
         "postgresql+psycopg://u:p@h/x?sslmode=require"),
        ("postgresql://h:5", "postgresql://h:5/x"),
    ],
)
def test_with_dbname(url: str, expected: str) -> None:
    assert services.with_dbname(url, "x") == expected


def test_pg_database_is_empty_and_writable(pg_database: str) -> None:
    assert pg_database.startswith("postgresql+psycopg://")
    with psycopg.connect(services.libpq_url(pg_database)) as conn:
        assert conn.info.dbname.startswith(services.DB_PREFIX)
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t VALUES (1, 'one')")
        assert conn.execute("SELECT v FROM t").fetchall() == [("one",)]


def test_pg_databases_are_isolated(make_pg_database: Callable[[], str]) -> None:
    a, b = make_pg_database(), make_pg_database()
    assert a != b
    with psycopg.connect(services.libpq_url(a), autocommit=True) as conn:
        conn.execute("CREATE TABLE only_in_a (id int)")
    with psycopg.connect(services.libpq_url(b), autocommit=True) as conn:
        conn.execute("CREATE TABLE only_in_b (id int)")
        assert conn.execute("SELECT to_regclass('only_in_a')").fetchone() == (None,)


def test_pg_databases_are_dropped(pg_admin_url: str) -> None:
    with services.database_factory(pg_admin_url) as make:
        url = make()
        # a connection still open must not stop the DROP (it is WITH (FORCE))
        lingering = psycopg.connect(services.libpq_url(url))
    try:
        with psycopg.connect(pg_admin_url) as conn:
            name = url.rsplit("/", 1)[1]
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        assert row is None
    finally:
        lingering.close()


def test_redis_set_get(redis_url: str) -> None:
    import redis

    with redis.Redis.from_url(redis_url) as client:
        client.set("faregate:test", "value", ex=60)
        assert client.get("faregate:test") == b"value"
        client.delete("faregate:test")
