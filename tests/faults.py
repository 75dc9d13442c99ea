"""Real faults, local to one test: a database that stops answering, a server that never answers.

Nothing here touches what other work on the machine uses: the PostgreSQL outage is one test
database refusing connections (the server keeps running), the SQLite one a lock on one file."""

from __future__ import annotations

import socket
import sqlite3
import threading
from contextlib import contextmanager
from typing import Iterator

from django.db import connection


@contextmanager
def database_outage() -> Iterator[None]:
    """The test database stops answering every session but this test's own until the block ends.

    SQLite: another connection holds the write lock (BEGIN EXCLUSIVE); in WAL mode reads still
    work, and every write waits out its busy timeout (SQLITE_BUSY_TIMEOUT) and fails with
    "database is locked", as during someone's long write.
    PostgreSQL: the database stops accepting connections and every other session of it is
    terminated (pg_terminate_backend), as in a restart or a failover; connecting fails until the
    block ends.
    """
    if connection.vendor == "sqlite":
        with _sqlite_locked(connection.settings_dict["NAME"]):
            yield
        return
    with _postgres_refusing(connection.settings_dict):
        yield


@contextmanager
def _sqlite_locked(path: str) -> Iterator[None]:
    holder = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@contextmanager
def _postgres_refusing(settings: dict) -> Iterator[None]:
    import psycopg
    from psycopg import sql

    maintenance = psycopg.connect(host=settings["HOST"] or "127.0.0.1", port=settings["PORT"] or 5432,
                                  user=settings["USER"], password=settings["PASSWORD"] or None,
                                  dbname="postgres", autocommit=True)
    name = sql.Identifier(settings["NAME"])
    connection.ensure_connection()
    ours = connection.connection.info.backend_pid
    try:
        maintenance.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(name))
        maintenance.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> %s", [settings["NAME"], ours])
        yield
    finally:
        maintenance.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(name))
        maintenance.close()


@contextmanager
def silent_server() -> Iterator[str]:
    """A loopback HTTP server that accepts connections and never answers; yields its base URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        for sock in accepted:
            sock.close()
        listener.close()
