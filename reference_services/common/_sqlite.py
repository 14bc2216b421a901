"""SQLite access from worker threads: a small pool of connections, so a lock wait never blocks the event loop.

Several processes may share one file (the stateless app tier), so every connection runs in WAL mode with a
busy timeout, and read-modify-write transactions take the write lock up front (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class StorageBusy(Exception):
    """Other writers held the database lock for longer than the busy timeout."""


class Database:
    """``connections`` connections to one SQLite file, each used by one worker thread at a time.

    Nothing happens until ``open`` (which also applies ``schema``, idempotent DDL); ``close`` waits for
    running work and closes every connection. ``run(fn, ...)`` calls ``fn(connection, ...)`` on a worker.
    """

    def __init__(
        self, path: Path, schema: str, *, connections: int = 4, busy_timeout: float = 5.0, name: str = "db"
    ) -> None:
        if connections < 1 or busy_timeout <= 0:
            raise ValueError("connections must be >= 1 and busy_timeout > 0")
        self.path = path
        self.schema = schema
        self.busy_timeout = busy_timeout
        self._size = connections
        self._name = name
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._executor: ThreadPoolExecutor | None = None

    async def open(self) -> None:
        """Create the file if needed, open the connections and apply the schema."""
        if self._executor is not None:
            raise RuntimeError(f"{self.path} is already open")
        self._executor = ThreadPoolExecutor(max_workers=self._size, thread_name_prefix=self._name)
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._open_all)
        except BaseException:
            await self.close()
            raise

    def _open_all(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(self._size):
            self._idle.put(self._connect())
        conn = self._idle.get()
        try:
            # One transaction, so processes starting together on a fresh file see all of it or none.
            conn.executescript(f"BEGIN IMMEDIATE;\n{self.schema}\nCOMMIT;")
        finally:
            if conn.in_transaction:
                conn.rollback()
            self._idle.put(conn)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: durable across process crashes
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    async def run(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(connection, *args, **kwargs)`` on a worker; StorageBusy when the lock wait times out."""
        if self._executor is None:
            raise RuntimeError(f"{self.path} is not open")

        def job(conn: sqlite3.Connection) -> T:
            return fn(conn, *args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, job)

    async def reachable(self) -> bool:
        """Whether the database answers a query now (for readiness)."""
        try:
            await self.run(lambda conn: conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchall())
        except Exception:  # not open yet, locked for long, or the file is gone: not ready, whatever it is
            return False
        return True

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._idle.get()  # never waits: there are as many connections as workers
        try:
            return fn(conn)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in _BUSY_CODES:
                raise StorageBusy(f"{self.path.name} stayed locked for {self.busy_timeout:g}s") from exc
            raise
        finally:
            if conn.in_transaction:  # a bug left one open: never hand a dirty connection on
                conn.rollback()
            self._idle.put(conn)

    async def close(self) -> None:
        """Wait for running work, then close every connection."""
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True)
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                break


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` .. ``COMMIT`` (``ROLLBACK`` on any error): the write lock is taken up front, so
    what the block reads cannot change before it writes, in this process or any other."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # some errors (a full disk) have rolled back already
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def read_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A deferred transaction: the statements inside read one consistent snapshot."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")  # nothing was written; ending it this way is cheapest and safe
