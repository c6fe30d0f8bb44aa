"""A throwaway PostgreSQL cluster for tests, examples and CI, from the machine's own binaries.

::

    from vanilla_async.pgcluster import TemporaryCluster

    with TemporaryCluster() as pg:           # initdb + start + CREATE DATABASE vanilla
        conn = psycopg.connect(pg.dsn)       # host=<socket dir> port=... dbname=vanilla user=...
        ...                                  # pg.tcp_dsn: the same server on 127.0.0.1:<pg.port>
        pg.restart()                         # pg_ctl restart -m fast: data kept, sessions dropped
        pg.terminate_backends()              # kill every other session on the database
    # stopped, and its temporary directory is gone

What it does
    ``start()`` finds ``initdb``, ``pg_ctl`` and ``postgres`` (see `find_binaries`), makes a private
    temporary directory (``<tmp>/vanilla-pg-XXXX``: the data directory ``data/``, the server log
    ``postgres.log`` and the unix socket), runs ``initdb --auth=trust --encoding=UTF8 --no-locale
    --no-sync``, appends its settings to ``postgresql.conf`` (unix socket in that directory *and*
    TCP on ``127.0.0.1:<a free port>``; ``fsync``, ``synchronous_commit`` and ``full_page_writes``
    off: durability is worthless for a throwaway cluster), ``pg_ctl start -w``, then creates the
    database (``createdb``, or psycopg when there is no ``createdb``). Authentication is ``trust``:
    anyone who can reach the socket or the loopback port is in, as any role.

Running as root
    initdb and the server refuse to run as root. When ``os.geteuid() == 0`` every server-side command
    runs as the system user ``os_user`` (default ``postgres``, the account the Debian package
    creates) through ``subprocess``'s ``user=``/``group=``; the temporary directory is chowned to it
    and the database superuser is named ``postgres``. Otherwise everything runs as the current user,
    and the superuser is named after it. Client-side commands (``createdb``, psycopg) run as the
    caller: root can enter the 0700 directory anyway; another unprivileged user cannot, and should use
    `tcp_dsn`.

Never leaking
    ``stop()`` is ``pg_ctl stop -m fast`` (falling back to ``-m immediate``, then SIGKILL), waits for
    the postmaster to be gone, and removes the directory; it is idempotent, and an ``atexit`` hook
    calls it. That does not cover a SIGKILLed or SIGTERMed Python, so each cluster also has a tiny
    watchdog (``/bin/sh``, its own session, running as the cluster's owner) that reads a pipe from
    this process: when the pipe closes without a "done" it runs ``pg_ctl stop -m immediate`` and
    ``rm -rf`` on the directory. Only the process that started a cluster stops it: a forked child
    (a prefork worker, say) that exits through ``atexit`` leaves it alone.

Timings (PostgreSQL 15, 2-CPU VM, as root): ``start()`` 0.7-0.9 s in all (initdb --no-sync 0.5 s,
server start 0.1 s, createdb 0.05-0.3 s), ``restart()`` 0.2 s, ``stop()`` 0.15 s. initdb is nearly all
of it, and almost all kernel time (~22,000 page faults): on a VM where faults are slow the same start
took 1.9 s (initdb 1.4 s).
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Mapping, Sequence

from .errors import VanillaError

__all__ = [
    "DEFAULT_SEARCH_DIRS",
    "PgBinaries",
    "PgClusterError",
    "TemporaryCluster",
    "find_binaries",
]

#: Where `find_binaries` looks after ``PATH``: Debian/Ubuntu's per-version directories.
DEFAULT_SEARCH_DIRS: tuple[str, ...] = ("/usr/lib/postgresql/*/bin",)

INSTALL_HINT = (
    "install the PostgreSQL server, e.g. `apt-get install postgresql` on Debian/Ubuntu "
    "(scripts/system-deps does it when it can), or pass bindir= to TemporaryCluster"
)

_SERVER_TOOLS = ("initdb", "pg_ctl", "postgres")
_SOCKET_PATH_MAX = 107  # sizeof(sun_path) - 1 on Linux
_SUBPROCESS_SLACK = 30.0  # seconds beyond pg_ctl's own -t before we give up on it


class PgClusterError(VanillaError):
    """A temporary PostgreSQL cluster could not be found, started, restarted or stopped.

    The message says what went wrong, and for a server that would not start, ends with the tail of
    its log.
    """


@dataclass(frozen=True)
class PgBinaries:
    """The PostgreSQL programs a cluster runs: all three server tools from one directory."""

    bindir: Path
    initdb: Path
    pg_ctl: Path
    postgres: Path
    createdb: Path | None  # a client tool; psycopg does its job when it is missing


def _is_exe(p: Path) -> bool:
    return os.path.isfile(p) and os.access(p, os.X_OK)  # isfile: False, not PermissionError


def _version_key(p: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", p))


def find_binaries(
    path: str | None = None, search_dirs: Sequence[str] = DEFAULT_SEARCH_DIRS
) -> PgBinaries:
    """Find ``initdb``, ``pg_ctl`` and ``postgres``: first through ``initdb`` on ``path`` (default
    ``$PATH``; symlinks are followed, since initdb and pg_ctl look for ``postgres`` next to their
    real selves), then in the directories the glob patterns ``search_dirs`` match, highest version
    first. Raises `PgClusterError` naming what is missing and how to install it.
    """
    if path is None:
        path = os.environ.get("PATH", os.defpath)
    candidates: list[Path] = []
    for entry in path.split(os.pathsep):
        if entry and _is_exe(Path(entry) / "initdb"):
            candidates.append(Path(os.path.realpath(Path(entry) / "initdb")).parent)
    for pattern in search_dirs:
        for match in sorted(glob.glob(pattern), key=_version_key, reverse=True):
            candidates.append(Path(match))
    incomplete: list[str] = []
    for d in dict.fromkeys(candidates):  # in order, without repeats
        missing = [t for t in _SERVER_TOOLS if not _is_exe(d / t)]
        if missing:
            if "initdb" not in missing:
                incomplete.append(f"{d} has initdb but no {' or '.join(missing)}")
            continue
        createdb: Path | None = d / "createdb"
        if not _is_exe(d / "createdb"):
            found = shutil.which("createdb", path=path)
            createdb = Path(found) if found else None
        return PgBinaries(d, d / "initdb", d / "pg_ctl", d / "postgres", createdb)
    where = " or under ".join(["PATH", *search_dirs]) if search_dirs else "PATH"
    detail = f" ({'; '.join(incomplete)})" if incomplete else ""
    raise PgClusterError(
        f"PostgreSQL server programs not found: need initdb, pg_ctl and postgres together, "
        f"found no initdb on {where}{detail}; {INSTALL_HINT}"
    )


def _quote_conninfo(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_conf(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie waiting for whoever adopted it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return stat[stat.rfind(b")") + 2 :][:1] in (b"Z", b"X")


def _clean_env() -> dict[str, str]:
    """The caller's environment without libpq/server ``PG*`` variables, and with C messages."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    return env


# Runs as the cluster's owner in its own session, reading a pipe this process holds. A "done" line
# means `stop()` did the job; end-of-file without it means this process died without stopping the
# cluster: stop the server, remove the directory. $1 datadir, $2 pg_ctl, $3 the temporary directory.
_WATCHDOG = r"""
trap '' INT HUP
word=
read -r word
[ "$word" = done ] && exit 0
if [ -f "$1/postmaster.pid" ]; then
  pid=$(head -n 1 "$1/postmaster.pid")
  "$2" stop -D "$1" -m immediate -w -t 10 >/dev/null 2>&1 || kill -9 "$pid" 2>/dev/null
fi
rm -rf "$3"
"""


class TemporaryCluster:
    """A private PostgreSQL server in a temporary directory; see the module docstring.

    ``dbname`` is created after start. ``user`` is the superuser's name (default ``postgres`` as
    root, else the current user). ``settings`` are extra ``postgresql.conf`` lines (``{"work_mem":
    "64MB"}``), after and over the defaults here. ``bindir`` pins the directory of the server
    programs; otherwise ``path``/``search_dirs`` go to `find_binaries`. ``base_dir`` is where the
    temporary directory goes (default: `tempfile.gettempdir`, or ``/tmp`` when running as root and
    ``os_user`` cannot reach that). ``os_user`` is the account the server runs as when we are root.
    """

    def __init__(
        self,
        dbname: str = "vanilla",
        *,
        user: str | None = None,
        settings: Mapping[str, str | int] | None = None,
        bindir: str | os.PathLike[str] | None = None,
        path: str | None = None,
        search_dirs: Sequence[str] = DEFAULT_SEARCH_DIRS,
        base_dir: str | os.PathLike[str] | None = None,
        os_user: str = "postgres",
        start_timeout: int = 30,
    ) -> None:
        self.dbname = dbname
        self._user = user
        self._settings = dict(settings or {})
        self._bindir = Path(bindir) if bindir is not None else None
        self._path = path
        self._search_dirs = tuple(search_dirs)
        self._base_dir = Path(base_dir) if base_dir is not None else None
        self.os_user = os_user
        self.start_timeout = start_timeout
        self._reset()

    def _reset(self) -> None:
        self._tmp: Path | None = None
        self._bins: PgBinaries | None = None
        self._owner: tuple[int, int] | None = None  # (uid, gid) to run server commands as; None: us
        self._port: int | None = None
        self._pid: int | None = None
        self._creator_pid: int | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ properties

    def _started(self) -> Path:
        if self._tmp is None:
            raise PgClusterError("the cluster is not started: call start() or use it as a context manager")
        return self._tmp

    @property
    def running(self) -> bool:
        """True between a successful `start` and `stop`."""
        return self._tmp is not None and self._pid is not None

    @property
    def user(self) -> str:
        """The database superuser's name."""
        if self._user is not None:
            return self._user
        if os.geteuid() == 0:
            return "postgres"
        try:
            return pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:  # a uid without a passwd entry (containers): initdb will complain anyway
            return "postgres"

    @property
    def directory(self) -> Path:
        """The temporary directory: ``data/``, ``postgres.log`` and the unix socket."""
        return self._started()

    @property
    def datadir(self) -> Path:
        """The data directory (``PGDATA``)."""
        return self._started() / "data"

    @property
    def logfile(self) -> Path:
        """The server's log (``pg_ctl -l``)."""
        return self._started() / "postgres.log"

    @property
    def host(self) -> str:
        """The unix-socket directory: libpq's ``host`` for a local connection."""
        return str(self._started())

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1; also names the unix socket (``.s.PGSQL.<port>``)."""
        self._started()
        if self._port is None:
            raise PgClusterError("the cluster has no port yet: start() did not finish")
        return self._port

    @property
    def pid(self) -> int:
        """The postmaster's process id."""
        self._started()
        if self._pid is None:
            raise PgClusterError("the server is not running")
        return self._pid

    @property
    def bindir(self) -> Path:
        """The directory of the server programs in use."""
        self._started()
        assert self._bins is not None
        return self._bins.bindir

    def _conninfo(self, host: str, dbname: str | None) -> str:
        parts = {"host": host, "port": str(self.port), "dbname": dbname or self.dbname, "user": self.user}
        return " ".join(f"{k}={_quote_conninfo(v)}" for k, v in parts.items())

    @property
    def dsn(self) -> str:
        """A libpq connection string over the unix socket: ``host=<dir> port=… dbname=… user=…``."""
        return self._conninfo(self.host, None)

    @property
    def tcp_dsn(self) -> str:
        """The same over TCP: ``host=127.0.0.1 port=… dbname=… user=…``."""
        return self._conninfo("127.0.0.1", None)

    def dsn_for(self, dbname: str, *, tcp: bool = False) -> str:
        """A connection string for another database of this cluster (``postgres``, say)."""
        return self._conninfo("127.0.0.1" if tcp else self.host, dbname)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server log ("" when there is none)."""
        try:
            text = self.logfile.read_text(errors="replace")
        except (OSError, PgClusterError):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------------ running commands

    def _run(
        self, argv: Sequence[str | os.PathLike[str]], *, what: str, timeout: float, as_owner: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program (as the cluster's owner unless ``as_owner`` is false)."""
        owner = self._owner if as_owner else None
        try:
            return subprocess.run(
                [os.fspath(a) for a in argv],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                env=_clean_env(), cwd=self._tmp, timeout=timeout,
                user=owner[0] if owner else None, group=owner[1] if owner else None,
                extra_groups=[] if owner else None,
            )
        except subprocess.TimeoutExpired as e:
            raise PgClusterError(f"{what}: {argv[0]} took more than {timeout:g} s") from e
        except OSError as e:
            raise PgClusterError(f"{what}: could not run {argv[0]}: {e}") from e

    @staticmethod
    def _output(proc: subprocess.CompletedProcess[str]) -> str:
        return (proc.stdout + proc.stderr).strip()

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self._bins is not None
        return self._run(
            [self._bins.pg_ctl, *args, "-D", self.datadir],
            what=f"pg_ctl {args[0]}", timeout=self.start_timeout + _SUBPROCESS_SLACK,
        )

    # ------------------------------------------------------------------ start

    def _find(self) -> PgBinaries:
        if self._bindir is not None:
            return find_binaries(path="", search_dirs=[str(self._bindir)])
        return find_binaries(self._path, self._search_dirs)

    def _resolve_owner(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        try:
            pw = pwd.getpwnam(self.os_user)
        except KeyError:
            raise PgClusterError(
                f"running as root, and PostgreSQL will not: it needs an unprivileged system user "
                f"to run as, and there is no {self.os_user!r} (`apt-get install postgresql` creates "
                f"'postgres'; or pass os_user=, or run as a non-root user)"
            ) from None
        if pw.pw_uid == 0:
            raise PgClusterError(f"os_user {self.os_user!r} is root; PostgreSQL refuses to run as root")
        return pw.pw_uid, pw.pw_gid

    def _choose_base(self, owner: tuple[int, int] | None) -> Path:
        if self._base_dir is not None:
            base = self._base_dir
            if owner is not None and not _others_can_enter(base):
                raise PgClusterError(
                    f"base_dir {base} is not reachable by the {self.os_user!r} user the server runs "
                    f"as (every parent directory needs o+x)"
                )
            return base
        base = Path(tempfile.gettempdir())
        if owner is not None and not _others_can_enter(base):
            base = Path("/tmp")
        return base

    def start(self) -> TemporaryCluster:
        """initdb, start the server and create the database; returns ``self``. ~0.7-2 s, see above."""
        if self._tmp is not None:
            raise PgClusterError("the cluster is already started")
        bins = self._find()
        owner = self._resolve_owner()
        base = self._choose_base(owner)
        tmp = Path(tempfile.mkdtemp(prefix="vanilla-pg-", dir=base))
        self._tmp, self._bins, self._owner, self._creator_pid = tmp, bins, owner, os.getpid()
        try:
            if owner is not None:
                os.chown(tmp, *owner)
            self._start_watchdog()
            atexit.register(self._atexit_stop)
            if len(str(tmp)) + len("/.s.PGSQL.65535") > _SOCKET_PATH_MAX:
                raise PgClusterError(
                    f"the unix socket path under {tmp} would be longer than {_SOCKET_PATH_MAX} "
                    f"bytes; pass a shorter base_dir="
                )
            self._initdb()
            self._start_server()
            self._create_database()
        except BaseException:
            try:
                self.stop()
            except PgClusterError:
                pass  # the error that stopped start() is the one to report
            raise
        return self

    def _start_watchdog(self) -> None:
        assert self._bins is not None and self._tmp is not None
        owner = self._owner
        self._watchdog = subprocess.Popen(
            ["/bin/sh", "-c", _WATCHDOG, "vanilla-pg-watchdog",
             str(self.datadir), str(self._bins.pg_ctl), str(self._tmp)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd="/", env=_clean_env(), start_new_session=True,
            user=owner[0] if owner else None, group=owner[1] if owner else None,
            extra_groups=[] if owner else None,
        )

    def _initdb(self) -> None:
        assert self._bins is not None
        proc = self._run(
            [self._bins.initdb, "-D", self.datadir, "--auth=trust", f"--username={self.user}",
             "--encoding=UTF8", "--no-locale", "--no-sync"],
            what="initdb", timeout=120,
        )
        if proc.returncode != 0:
            raise PgClusterError(f"initdb failed (exit {proc.returncode}):\n{self._output(proc)}")

    def _write_settings(self, port: int) -> None:
        settings: dict[str, str | int] = {
            "listen_addresses": "127.0.0.1",
            "port": port,
            "unix_socket_directories": str(self._tmp),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": 200,
            "shared_buffers": "128MB",
            **self._settings,
        }
        lines = [f"{k} = {v if isinstance(v, int) else _quote_conf(v)}" for k, v in settings.items()]
        with open(self.datadir / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write("\n# vanilla_async.pgcluster\n" + "\n".join(lines) + "\n")

    def _start_server(self) -> None:
        for attempt in range(3):  # a free port can be taken between our probe and the server's bind
            port = _free_port()
            self._write_settings(port)
            self._port = port
            proc = self._pg_ctl("start", "-w", "-t", str(self.start_timeout), "-l", str(self.logfile))
            if proc.returncode == 0:
                self._pid = self._read_pid()
                return
            tail = self.log_tail()
            if "Address already in use" not in tail or attempt == 2:
                raise PgClusterError(
                    f"pg_ctl start failed (exit {proc.returncode}): {self._output(proc)}\n"
                    f"--- {self.logfile} (tail) ---\n{tail}"
                )
            self._pg_ctl("stop", "-m", "immediate", "-w")  # in case it half-started

    def _read_pid(self) -> int:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError) as e:
            raise PgClusterError(f"the server started but its postmaster.pid is unreadable: {e}") from e

    def _create_database(self) -> None:
        assert self._bins is not None
        if self.dbname in ("postgres", "template1"):
            return
        if self._bins.createdb is not None:
            proc = self._run(
                [self._bins.createdb, "-h", self.host, "-p", str(self.port), "-U", self.user, "--", self.dbname],
                what="createdb", timeout=60, as_owner=False,
            )
            if proc.returncode != 0:
                raise PgClusterError(f"createdb {self.dbname!r} failed: {self._output(proc)}")
            return
        try:
            import psycopg
            from psycopg import sql
        except ImportError:
            raise PgClusterError(
                "cannot create the database: no createdb program next to initdb or on PATH, and no "
                "psycopg (`pip install 'psycopg[binary]'`, or install postgresql-client)"
            ) from None
        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dbname)))

    # ------------------------------------------------------------------ while running

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every session is dropped, data and port stay. ~0.2 s."""
        self._started()
        if self._pid is None:
            raise PgClusterError("the server is not running")
        proc = self._pg_ctl(
            "restart", "-m", "fast", "-w", "-t", str(self.start_timeout), "-l", str(self.logfile)
        )
        if proc.returncode != 0:
            raise PgClusterError(
                f"pg_ctl restart failed (exit {proc.returncode}): {self._output(proc)}\n"
                f"--- {self.logfile} (tail) ---\n{self.log_tail()}"
            )
        self._pid = self._read_pid()

    def terminate_backends(self, timeout: float = 10.0) -> int:
        """Terminate every other session on the cluster's database (``pg_terminate_backend``) through
        a separate psycopg connection, wait until they are gone, and return how many there were.
        The victims' next query raises ``psycopg.OperationalError``. Needs psycopg.
        """
        try:
            import psycopg
        except ImportError:
            raise PgClusterError("terminate_backends() needs psycopg: pip install 'psycopg[binary]'") from None
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND datname = current_database()"
            ).fetchall()
            pids = [int(pid) for pid, ok in rows if ok]
            deadline = time.monotonic() + timeout
            while pids:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
                ).fetchone()
                if row is None or row[0] == 0:
                    break
                if time.monotonic() > deadline:
                    raise PgClusterError(f"backends {pids} still alive {timeout:g} s after pg_terminate_backend")
                time.sleep(0.01)
        return len(pids)

    # ------------------------------------------------------------------ stop

    def stop(self) -> None:
        """Stop the server (``pg_ctl stop -m fast``, then harder), wait until its processes are gone
        and remove the temporary directory. Idempotent; a no-op in a forked child. ~0.1 s.
        """
        tmp = self._tmp
        if tmp is None or self._creator_pid != os.getpid():
            return
        error: str | None = None
        try:
            if (self.datadir / "postmaster.pid").exists():
                error = self._stop_server()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            self._stop_watchdog(done=not tmp.exists() and error is None)
            atexit.unregister(self._atexit_stop)
            self._reset()
        if error is not None:
            raise PgClusterError(error)
        if tmp.exists():
            raise PgClusterError(f"could not remove {tmp}")

    def _stop_server(self) -> str | None:
        pid = self._pid
        if pid is None:
            try:
                pid = self._read_pid()
            except PgClusterError:
                pid = None
        proc = self._pg_ctl("stop", "-m", "fast", "-w", "-t", str(self.start_timeout))
        if proc.returncode != 0:
            proc = self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "10")
        if pid is None:
            return None if proc.returncode == 0 else f"pg_ctl stop failed: {self._output(proc)}"
        deadline = time.monotonic() + 10
        while not _process_gone(pid):
            if time.monotonic() > deadline:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
                return f"postmaster {pid} survived pg_ctl stop ({self._output(proc)}); sent SIGKILL"
            time.sleep(0.005)
        return None

    def _stop_watchdog(self, *, done: bool) -> None:
        wd = self._watchdog
        if wd is None:
            return
        assert wd.stdin is not None
        try:
            if done:
                wd.stdin.write(b"done\n")
            wd.stdin.close()  # without "done": it cleans up whatever we could not
        except OSError:
            pass
        try:
            wd.wait(timeout=20)
        except subprocess.TimeoutExpired:
            wd.kill()
            wd.wait()

    def _atexit_stop(self) -> None:
        try:
            self.stop()
        except Exception as e:  # at exit there is no one left to raise to
            print(f"vanilla_async.pgcluster: stopping the temporary cluster at exit: {e}", flush=True)

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> TemporaryCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        if self._tmp is None:
            return f"<TemporaryCluster {self.dbname!r} stopped>"
        return f"<TemporaryCluster {self.dbname!r} at {self._tmp} port {self._port} pid {self._pid}>"


def _others_can_enter(d: Path) -> bool:
    """True when every directory from ``/`` to ``d`` has the others-execute bit."""
    try:
        p = d.resolve()
        for q in (p, *p.parents):
            if not os.stat(q).st_mode & 0o001:
                return False
    except OSError:
        return False
    return True
