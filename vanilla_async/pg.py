"""vanilla_async.pg: one pipelined PostgreSQL connection per worker, driven by reactor tokens.

    from vanilla_async import ServerConfig, respond
    from vanilla_async.pg import Database

    def make_state():                      # after the fork: one connection per worker, no pool
        return Database()                  # DSN from the argument or $DATABASE_URL

    def on_worker_start(db, reactor):
        return db.pump(reactor)            # the one task that owns the connection's socket

    def handler(req, out):
        return user(req, out)

    def user(req, out):
        row = yield from req.state.fetch_one("select id, name from users where id = $1", 42)
        respond(out, 200, repr(row))

Theory of operation
-------------------
Built on psycopg 3's *documented* low-level API only (`psycopg.pq.PGconn`: ``connect_start`` /
``connect_poll``, pipeline mode, ``send_query_params`` / ``send_prepare`` /
``send_query_prepared``, ``pipeline_sync``, ``consume_input`` / ``is_busy`` / ``get_result``,
``flush``, ``notifies``), `psycopg.adapt.Transformer` for parameters and rows, and
`psycopg.errors.lookup` for exceptions — not psycopg's private generator modules, not threads.

* **One unit per request.** `fetch`, `fetch_one`, `execute` and `run` queue their statements
  and *one* Sync into libpq's output buffer, then park on the unit's own `ParkingLot`. The
  server wraps everything between two Syncs in one implicit transaction, so a unit is atomic and
  one request's SQL error aborts only its own unit. Units are answered first-in, first-out: the
  results stream (per statement: results then ``None``; per Sync: ``PIPELINE_SYNC``) is matched to
  the head of the queue, no ids needed.
* **One pump.** A single clientless task owns the socket (the reactor allows one reader per fd):
  it waits for readability — and writability while libpq still has output to flush — consumes
  input, routes results, and delivers notifications. It reads while it writes, so a big batch
  cannot deadlock against the server filling its own output buffer.
* **Departed clients.** A request whose client leaves (its generator is closed) or whose query
  deadline passes leaves its unit in the queue; the results are read and dropped in order, so the
  connection stays aligned and healthy.
* **Lost connection.** An error from libpq (server restart, `pg_terminate_backend`) fails every
  queued unit at once with `DatabaseUnavailable` (handlers answer 503), and the pump reconnects —
  non-blocking, with back-off — re-preparing statements and re-issuing LISTENs on the new
  connection. New requests fail fast with `DatabaseUnavailable` until it is back.
* **Shedding.** At most ``max_in_flight`` units are queued; beyond that `DatabaseBusy` (503).
* **One send per loop turn.** A request's Sync is queued with libpq's ``PQsendPipelineSync``
  (no flush) and one deferred flush per reactor turn sends the queries of every request that
  started in it: at 64 concurrent clients that replaces ~60 ``send`` calls with one.
* **Prepared statements.** The first use of an SQL text prepares it on the connection (in the same
  pipeline) and later uses run the prepared statement: the single backend then skips parsing and
  planning, which is most of the cost of a small query.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections import deque
from typing import Any, Callable, Generator, NamedTuple, Sequence, cast

from ._optional import require

require("psycopg", extra="pg", feature="vanilla_async.pg")
import psycopg  # noqa: E402 (after the check that names the extra)
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

from reactor import ParkingLot, Reactor, Token, first, park, readable, sleep, writable

from .errors import VanillaError

__all__ = ("Database", "DatabaseBusy", "DatabaseError", "DatabaseUnavailable", "Listener", "QueryTimeout", "Result")

log = logging.getLogger("vanilla_async.pg")

PgGen = Generator[Token, Any, Any]  #: any of this module's generators (their precise types are on each method)
_ExecStatus = pq.ExecStatus


def _find_send_pipeline_sync() -> Callable[[int], int] | None:
    """libpq's ``PQsendPipelineSync`` (libpq >= 17): queue a Sync *without* flushing.

    psycopg does not wrap it, but it documents ``PGconn.pgconn_ptr`` for handing its connection
    to other libpq callers; we call the function from the very libpq psycopg loaded (found in
    /proc/self/maps). Without it (older libpq, not Linux) each request's Sync flushes at once.
    """
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libpq" in line and line.rstrip().endswith(tuple("0123456789o"))}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            function = ctypes.CDLL(path).PQsendPipelineSync
        except (OSError, AttributeError):
            continue
        function.argtypes = [ctypes.c_void_p]
        function.restype = ctypes.c_int
        return cast("Callable[[int], int]", function)
    return None


_send_pipeline_sync = _find_send_pipeline_sync()


class DatabaseError(VanillaError):
    """Base class of the errors this module raises on its own (SQL errors are psycopg's)."""


class DatabaseUnavailable(DatabaseError):
    """The connection is down (lost, or reconnecting): answer 503 and let the client retry."""


class DatabaseBusy(DatabaseError):
    """Too many queries in flight on this worker's connection: answer 503 (load shedding)."""


class QueryTimeout(DatabaseError):
    """The query did not complete within its deadline (its result will be read and dropped)."""


class Result(NamedTuple):
    """One statement's outcome: decoded ``rows`` (tuples) and the server's ``rowcount``."""

    rows: list[tuple[Any, ...]]
    rowcount: int


class _Unit:
    """A request's statements and their Sync, waiting in the FIFO for results."""

    __slots__ = ("commands", "cursor", "results", "error", "lot", "done", "group")

    def __init__(self, commands: list[tuple[bool, str, bytes | None]]) -> None:
        # per result group: (True, sql, name) for a statement (name None: unprepared), (False, sql, name) for a prepare
        self.commands = commands
        self.cursor = 0  # the command whose result group is arriving
        self.results: list[Result] = []
        self.error: BaseException | None = None
        self.lot = ParkingLot()
        self.done = False
        self.group: list[pq.abc.PGresult] = []


class Listener:
    """Notifications on one channel: ``payload = yield from listener.get(timeout)``."""

    def __init__(self, db: Database, channel: str) -> None:
        self.db = db
        self.channel = channel
        self.queue: deque[str] = deque(maxlen=10_000)
        self.lot = ParkingLot()

    def get(self, timeout: float | None = None) -> Generator[Token, Any, str | None]:
        """The next payload, or ``None`` after ``timeout`` seconds."""
        while not self.queue:
            if not (yield park(self.lot, timeout)):
                return None
        return self.queue.popleft()


class Database:
    """One pipelined connection (see the module docstring). Create it after the fork."""

    def __init__(
        self, dsn: str | None = None, *, max_in_flight: int = 1024, query_timeout: float = 10.0,
        prepare: bool = True, reconnect_delay: float = 0.1, connect_now: bool = True, max_prepared: int = 256,
    ) -> None:
        dsn = dsn if dsn is not None else os.environ.get("DATABASE_URL")
        if not dsn:
            raise DatabaseError("no database: pass a DSN to Database(...) or set DATABASE_URL")
        self.dsn = dsn
        self.max_in_flight = max_in_flight
        self.query_timeout = query_timeout
        self.prepare = prepare
        self.max_prepared = max_prepared  # distinct SQL texts prepared per connection; later ones run unprepared
        self.reconnect_delay = reconnect_delay
        self._pg: pq.abc.PGconn | None = None
        self._units: deque[_Unit] = deque()
        self._in_group = False
        self._want_write = False
        self._kick = ParkingLot()
        self._prepared: dict[str, bytes] = {}
        self._names = 0  # prepared statement names are never reused on a connection
        # Why a prepare failed, by name: statements pipelined behind it with that name fail with
        # "prepared statement does not exist", and should report the original cause instead.
        self._prepare_errors: dict[bytes, BaseException] = {}
        self._listeners: dict[str, list[Listener]] = {}
        self._tx = Transformer()
        self._closed = False
        self._pumping = False
        self._reactor: Reactor | None = None
        self._flush_soon = False
        self.connects = 0  #: successful connections so far (1 + reconnections)
        if connect_now:
            self._connect_blocking()

    # -- the public API ---------------------------------------------------------------------------
    def fetch(self, sql: str, *params: Any, timeout: float | None = None) -> Generator[Token, Any, list[tuple[Any, ...]]]:
        """``rows = yield from db.fetch(sql, *params)``: a list of tuples."""
        results = yield from self.run([(sql, params)], timeout=timeout)
        return results[0].rows

    def fetch_one(self, sql: str, *params: Any,
                  timeout: float | None = None) -> Generator[Token, Any, tuple[Any, ...] | None]:
        """The first row, or ``None``."""
        rows = yield from self.fetch(sql, *params, timeout=timeout)
        return rows[0] if rows else None

    def execute(self, sql: str, *params: Any, timeout: float | None = None) -> Generator[Token, Any, int]:
        """Run a statement; returns the number of rows it affected."""
        results = yield from self.run([(sql, params)], timeout=timeout)
        return results[0].rowcount

    def run(self, statements: Sequence[tuple[str, Sequence[Any]]], *,
            timeout: float | None = None) -> Generator[Token, Any, list[Result]]:
        """Several statements under ONE Sync: one implicit transaction, all or nothing.

        Returns a `Result` per statement. An SQL error raises the matching psycopg exception
        (e.g. `psycopg.errors.UniqueViolation`) and rolls the whole unit back.
        """
        if not self._pumping:
            raise DatabaseError(
                "Database.pump() is not running on this worker: return db.pump(reactor) from on_worker_start "
                "(it is the task that reads the connection's results)"
            )
        pg = self._pg
        if pg is None or self._closed:
            raise DatabaseUnavailable("the database connection is down (reconnecting); retry shortly")
        if len(self._units) >= self.max_in_flight:
            raise DatabaseBusy(f"{self.max_in_flight} queries already in flight on this worker's connection")
        # Every parameter is converted before anything is queued: a failure here must not leave
        # half a unit in libpq's buffer, whose results the next request would receive.
        dumped = [
            (sql, self._tx.dump_sequence(params, [PyFormat.TEXT] * len(params)) if params else None)
            for sql, params in statements
        ]
        commands: list[tuple[bool, str, bytes | None]] = []
        try:
            for sql, values in dumped:
                name = self._prepared.get(sql) if self.prepare else None
                if self.prepare and name is None and len(self._prepared) < self.max_prepared:
                    name = self._prepared[sql] = b"s%d" % self._names
                    self._names += 1
                    pg.send_prepare(name, sql.encode())
                    commands.append((False, sql, name))
                if name is not None:
                    pg.send_query_prepared(name, values)
                else:
                    pg.send_query_params(sql.encode(), values)
                commands.append((True, sql, name))
            pointer = getattr(pg, "pgconn_ptr", None) if self._reactor is not None else None
            if _send_pipeline_sync is not None and pointer is not None:
                if not _send_pipeline_sync(pointer):
                    raise psycopg.OperationalError(pg.get_error_message())
            else:
                pg.pipeline_sync()  # flushes now: one send per request
        except psycopg.OperationalError as exc:
            self._lost(exc)
            raise DatabaseUnavailable(f"the database connection failed: {exc}") from exc
        unit = _Unit(commands)
        self._units.append(unit)
        if self._reactor is not None:
            if not self._flush_soon:  # every request of this loop turn leaves in one send
                self._flush_soon = True
                self._reactor.call_soon(self._deferred_flush)
        else:
            self._flush()
        if not unit.done:
            arrived = yield park(unit.lot, timeout if timeout is not None else self.query_timeout)
            if not arrived and not unit.done:
                raise QueryTimeout(f"query did not complete within {timeout or self.query_timeout} s")
        if unit.error is not None:
            raise unit.error
        return unit.results

    def listener(self, channel: str) -> Listener:
        """Subscribe to ``NOTIFY channel`` (LISTEN is sent now, and again after a reconnect)."""
        if not channel.isidentifier():
            raise ValueError(f"channel must be a plain identifier, got {channel!r}")
        listener = Listener(self, channel)
        first_one = channel not in self._listeners
        self._listeners.setdefault(channel, []).append(listener)
        if first_one and self._pg is not None:
            self._send_listen(channel)
        return listener

    @property
    def in_flight(self) -> int:
        return len(self._units)

    @property
    def connected(self) -> bool:
        return self._pg is not None

    def close(self) -> None:
        self._closed = True
        self._fail_all(DatabaseUnavailable("the database connection was closed"))
        if self._pg is not None:
            self._pg.finish()
            self._pg = None

    # -- the pump ------------------------------------------------------------------------------------
    def pump(self, reactor: Reactor | None = None) -> Generator[Token, Any, None]:
        """The task that owns the connection: ``return db.pump(reactor)`` from ``on_worker_start``.

        With the worker's ``reactor``, the queries of every request started in one loop turn are
        flushed to the server together, in one ``send`` (without it, one per request).
        """
        if self._pumping:
            raise DatabaseError("Database.pump() is already running: start it once per worker")
        self._pumping = True
        self._reactor = reactor
        try:
            while not self._closed:
                if self._pg is None:
                    ok = yield from self._connect()
                    if not ok:
                        yield sleep(self.reconnect_delay)
                        continue
                pg = self._pg
                assert pg is not None
                fd = pg.socket
                if self._want_write:  # (the kick also wakes us if a request saw the connection die)
                    yield first(readable(fd), writable(fd), park(self._kick))
                else:
                    yield first(readable(fd), park(self._kick))
                if self._pg is not pg:
                    continue  # lost (and finished) while we waited
                try:
                    if self._want_write:
                        self._want_write = pg.flush() == 1
                    pg.consume_input()
                    self._route(pg)
                except psycopg.OperationalError as exc:
                    self._lost(exc)
        finally:
            self._pumping = False
            self._reactor = None
            self.close()

    def _connect_blocking(self) -> None:
        """The first connection, made in the worker (after the fork) before it serves anything."""
        try:
            pg = pq.PGconn.connect(self.dsn.encode())
            if pg.status != pq.ConnStatus.OK:
                raise psycopg.OperationalError(pg.get_error_message())
        except psycopg.OperationalError as exc:
            log.warning("cannot connect to the database yet (%s); the pump will retry", exc)
            return
        self._ready(pg)

    def _ready(self, pg: pq.abc.PGconn) -> None:
        pg.nonblocking = 1
        pg.enter_pipeline_mode()
        self._pg = pg
        self._in_group = False
        self._prepared.clear()
        self._prepare_errors.clear()
        self.connects += 1
        # psycopg's text loaders read dates in ISO style; the server's default may differ.
        self._send_and_forget("SET DateStyle TO 'ISO, YMD'")
        for channel in self._listeners:
            self._send_listen(channel)
        log.info("connected to the database (pipeline mode, connection #%d)", self.connects)

    def _connect(self) -> Generator[Token, Any, bool]:
        """A non-blocking (re)connection: libpq's connect_poll driven by fd tokens."""
        pg: pq.abc.PGconn | None = None
        try:
            pg = pq.PGconn.connect_start(self.dsn.encode())
            while True:
                status = pg.connect_poll()
                if status == pq.PollingStatus.OK:
                    break
                if status == pq.PollingStatus.FAILED:
                    raise psycopg.OperationalError(pg.get_error_message())
                fd = pg.socket
                ready = yield (readable(fd, 5.0) if status == pq.PollingStatus.READING else writable(fd, 5.0))
                if not ready:
                    raise psycopg.OperationalError("timed out connecting to the database")
        except psycopg.OperationalError as exc:
            if pg is not None:
                pg.finish()  # its socket, if it got one
            log.warning("cannot connect to the database (%s); retrying in %.1fs", exc, self.reconnect_delay)
            return False
        except BaseException:  # cancelled (shutdown) mid-connect
            if pg is not None:
                pg.finish()
            raise
        self._ready(pg)
        return True

    def _send_listen(self, channel: str) -> None:
        self._send_and_forget(f'LISTEN "{channel}"')

    def _send_and_forget(self, sql: str) -> None:
        pg = self._pg
        assert pg is not None
        pg.send_query_params(sql.encode(), None)
        pg.pipeline_sync()
        self._units.append(_Unit([(True, sql, None)]))  # nobody waits on it: its results are dropped in order
        self._flush()

    def _deferred_flush(self) -> None:
        self._flush_soon = False
        self._flush()

    def _flush(self) -> None:
        pg = self._pg
        if pg is None:
            return
        try:
            pending = pg.flush() == 1
        except psycopg.OperationalError as exc:
            self._lost(exc)
            return
        if pending and not self._want_write:
            self._want_write = True
            self._kick.unpark_all()  # the pump now waits for writability too

    def _route(self, pg: pq.abc.PGconn) -> None:
        """Match every result that is ready to the head of the FIFO (see the module docstring)."""
        units = self._units
        while not pg.is_busy():
            res = pg.get_result()
            if res is None:
                if not self._in_group:
                    break  # nothing more is ready
                self._in_group = False
                if units:
                    self._end_group(units[0])
                continue
            if res.status == _ExecStatus.PIPELINE_SYNC:
                if units:
                    self._deliver(units.popleft())
                continue
            self._in_group = True
            if units:
                units[0].group.append(res)
        notify = pg.notifies()
        while notify is not None:
            self._notify(notify.relname.decode(), notify.extra.decode())
            notify = pg.notifies()

    def _end_group(self, unit: _Unit) -> None:
        group, unit.group = unit.group, []
        is_statement, sql, name = unit.commands[unit.cursor] if unit.cursor < len(unit.commands) else (True, "", None)
        unit.cursor += 1
        for res in group:
            if res.status == _ExecStatus.FATAL_ERROR:
                error: BaseException = _error_from(res)
                if not is_statement and name is not None:
                    self._prepared.pop(sql, None)  # the prepare failed: prepare anew next time
                    if len(self._prepare_errors) < 1024:
                        self._prepare_errors[name] = error
                elif isinstance(error, pg_errors.InvalidSqlStatementName) and name in self._prepare_errors:
                    error = self._prepare_errors[name]  # pipelined behind its failed prepare: the real cause
                if unit.error is None:
                    unit.error = error
            elif res.status == _ExecStatus.PIPELINE_ABORTED:
                if not is_statement:
                    self._prepared.pop(sql, None)  # skipped, so never prepared
                if unit.error is None:
                    unit.error = pg_errors.InFailedSqlTransaction("statement skipped: an earlier one in this unit failed")
        if not is_statement:
            return
        rows: list[tuple[Any, ...]] = []
        rowcount = -1
        for res in group:
            if res.status == _ExecStatus.TUPLES_OK:
                try:
                    self._tx.set_pgresult(res)
                    rows = self._tx.load_rows(0, res.ntuples, tuple)
                except psycopg.Error as exc:  # a value Python cannot represent: fail this unit only
                    if unit.error is None:
                        unit.error = exc
                rowcount = res.ntuples
            elif res.status == _ExecStatus.COMMAND_OK:
                rowcount = _rowcount(res)
        unit.results.append(Result(rows, rowcount))

    def _deliver(self, unit: _Unit) -> None:
        unit.done = True
        unit.lot.unpark_all()

    def _notify(self, channel: str, payload: str) -> None:
        for listener in self._listeners.get(channel, ()):
            listener.queue.append(payload)
            listener.lot.unpark_all()

    def _lost(self, exc: BaseException) -> None:
        log.warning("database connection lost (%s); failing %d queued queries, reconnecting", exc, len(self._units))
        if self._pg is not None:
            try:
                self._pg.finish()
            except Exception:  # pragma: no cover - finishing a dead connection
                pass
            self._pg = None
        self._want_write = False
        self._fail_all(DatabaseUnavailable(f"the database connection was lost: {exc}"))
        self._kick.unpark_all()

    def _fail_all(self, error: BaseException) -> None:
        units, self._units = self._units, deque()
        for unit in units:
            if not unit.done:
                unit.error = error
                self._deliver(unit)


def _rowcount(res: pq.abc.PGresult) -> int:
    tuples = res.command_tuples
    return tuples if tuples is not None else -1


def _error_from(res: pq.abc.PGresult) -> psycopg.Error:
    sqlstate = res.error_field(pq.DiagnosticField.SQLSTATE)
    message = (res.error_message or b"").decode(errors="replace").strip()
    try:
        cls = pg_errors.lookup(sqlstate.decode()) if sqlstate else psycopg.DatabaseError
    except KeyError:
        cls = psycopg.DatabaseError
    return cls(message)
