"""The io_uring backend: epoll's registrations, re-expressed as io_uring poll requests.

Theory of operation
-------------------
`Reactor.run` wants a poller: ``poll(timeout) -> [(fd, mask)]`` plus the registration calls of
`_backends.Backend`. This backend gives it exactly that on io_uring, so the reactor, its tokens
and the HTTP connection run unchanged; only the way readiness reaches the loop changes.

* **Registrations are poll requests.** Each fd interest is one in-flight ``IORING_OP_POLL_ADD``
  whose ``user_data`` is a fresh 64-bit id (never an fd number, so a completion left over from
  a closed fd can never be mistaken for one about a new socket that reuses the number):

  - a *stream* (`add_stream`) is a **multishot** poll (``IORING_POLL_ADD_MULTI``) for
    IN|OUT|RDHUP. io_uring polls are edge-triggered unless ``IORING_POLL_ADD_LEVEL`` is asked
    for, and a new poll reports the readiness the fd already has, so a multishot poll posts one
    completion per wake-up of the socket, exactly like epoll's EPOLLET registration the
    connection was written for: `edge_triggered` is True and `want_read`/`want_write` are
    no-ops, as on epoll.
  - a *one-shot watch* (`arm`, a parked generator) is a single-shot poll: it completes once,
    like EPOLLONESHOT, and the reactor's re-arm (`_FdWatch.on_event` → `arm`) adds a new one. A
    watch whose mask changes while its poll is in flight is replaced (remove + add).
  - a *reader* (`add_reader`, the listener and the reactor's wake-up socket) must be
    level-triggered: the worker accepts at most a batch per event. It is a single-shot poll
    re-added before the next wait; a new poll reports the readiness the fd has *then*, which is
    level-triggered behaviour.

* **The kernel may end a multishot poll** (for instance when the completion ring is full): its
  last completion lacks ``IORING_CQE_F_MORE``. The poll is then re-added before the next wait
  (counted in `multishot_restarts`); since a new poll reports present readiness, no edge is
  lost. That same property means a re-added poll on a writable socket completes at once, so
  re-adding thousands of them would fill the ring again and end them again, every turn: at most
  a quarter of the completion ring's worth is re-added per turn, the rest on the next ones. A completion with an error (``-EBADF``: the fd was closed before the request reached
  the kernel) ends the registration and is reported as ERROR|HANGUP, so the owner finds out
  when it reads, as it would from epoll's EPOLLERR.

* **One system call per loop turn.** Registrations only write a submission entry into the
  mmapped ring; `poll` publishes them all and waits in the same ``io_uring_enter`` (submit +
  ``GETEVENTS`` + a timeout through ``IORING_ENTER_EXT_ARG``). When the submission ring fills
  up between two turns, it is submitted early (counted in `early_submits`), never dropped.
  Completions are read straight from the mmapped completion ring and merged per fd, so the
  reactor sees each fd at most once per turn, as from `epoll.poll()`.

* **Closing.** A poll request holds a reference to the file, so closing the fd does *not* end
  it (epoll forgets a file when its last fd closes; io_uring keeps it alive). `remove` (which
  the reactor's contract already requires before closing) queues an ``IORING_OP_POLL_REMOVE``
  by id; the socket is really released — and its FIN sent — when that reaches the kernel at the
  start of the next loop turn. `close` closes the ring, which cancels every request.

Why ``ctypes`` and not a binding: the PyPI ``liburing`` package wraps the C library through a
compiled extension (a build dependency for three system calls), and every Python binding still
pays one foreign call per operation. Here there are only two system calls
(``io_uring_setup``, ``io_uring_enter``) and two mmaps, entries are written with one
`struct.Struct.pack_into` and completions read through `memoryview` casts of the ring, so a
hand-written layer costs no dependency and no more per event. ``IORING_SETUP_COOP_TASKRUN``
(when the kernel has it) spares the loop inter-processor interrupts; ``SINGLE_ISSUER`` and
``DEFER_TASKRUN`` are not used because a reactor may be built in one thread and run in another
(`vanilla_async.testing.serve` does).

Cost: the same readiness costs more here than on epoll. ``epoll.poll()`` builds its event list
in C; this backend makes a ctypes call per turn and unpacks completions in Python, and the
kernel's poll requests re-check readiness in task work on every wake-up. Measured with
`examples.io_uring_demo.measure` (wrk, one worker, plaintext): requests/s about even, server
CPU per request about 1.2 times epoll's (user time mostly). io_uring pays off when it does the
I/O itself (multishot recv with provided buffers, send), which would change the connection;
this backend keeps the contract instead, so ``auto`` stays epoll.

Memory ordering: entries are written and the tail published by the loop's own thread before it
calls ``io_uring_enter`` (a system call orders them); completions of poll requests are posted by
task work that runs in the loop's thread inside ``io_uring_enter``. Needs Linux 5.11+
(``IORING_FEAT_EXT_ARG``); without io_uring, `UringBackend` raises `BackendUnavailableError`
naming the fallback (``--backend epoll``).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import mmap
import os
import struct
import sys
from collections.abc import Callable

from ._backends import BROKEN, PEER_CLOSED, READABLE, WRITABLE, check_pollable
from ._errors import BackendUnavailableError

__all__ = ("UringBackend", "uring_unavailable_reason")

log = logging.getLogger("reactor")

# system call numbers: the same on every architecture that has io_uring (added after the tables merged)
_NR_IO_URING_SETUP = 425
_NR_IO_URING_ENTER = 426

_IORING_OFF_SQ_RING = 0
_IORING_OFF_SQES = 0x10000000

_IORING_SETUP_CQSIZE = 1 << 3
_IORING_SETUP_CLAMP = 1 << 4
_IORING_SETUP_SUBMIT_ALL = 1 << 7
_IORING_SETUP_COOP_TASKRUN = 1 << 8

_IORING_FEAT_SINGLE_MMAP = 1 << 0
_IORING_FEAT_NODROP = 1 << 1
_IORING_FEAT_EXT_ARG = 1 << 8
_NEEDED_FEATURES = _IORING_FEAT_SINGLE_MMAP | _IORING_FEAT_NODROP | _IORING_FEAT_EXT_ARG

_IORING_ENTER_GETEVENTS = 1 << 0
_IORING_ENTER_EXT_ARG = 1 << 3

_IORING_SQ_CQ_OVERFLOW = 1 << 1

_IORING_OP_POLL_ADD = 6
_IORING_OP_POLL_REMOVE = 7
_IORING_POLL_ADD_MULTI = 1 << 0
_IORING_CQE_F_MORE = 1 << 1

_SQE_SIZE = 64
_CQE_SIZE = 16
#: the first 48 bytes of ``struct io_uring_sqe`` (the last 16 stay zero: nothing here uses them)
_SQE = struct.Struct("=BBHiQQIIQHHi")
_CQE = struct.Struct("=QiI")  # struct io_uring_cqe: user_data, res, flags

_STREAM_EVENTS = READABLE | WRITABLE | PEER_CLOSED
_REMOVE_ID = 0  # user_data of POLL_REMOVE requests: their own completions are ignored

# registration kinds
_STREAM, _READER, _WATCH = 0, 1, 2


class _SqOffsets(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("head", "tail", "ring_mask", "ring_entries", "flags", "dropped",
                                               "array", "resv1")] + [("user_addr", ctypes.c_uint64)]


class _CqOffsets(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("head", "tail", "ring_mask", "ring_entries", "overflow", "cqes",
                                               "flags", "resv1")] + [("user_addr", ctypes.c_uint64)]


class _Params(ctypes.Structure):
    _fields_ = (
        ("sq_entries", ctypes.c_uint32), ("cq_entries", ctypes.c_uint32), ("flags", ctypes.c_uint32),
        ("sq_thread_cpu", ctypes.c_uint32), ("sq_thread_idle", ctypes.c_uint32), ("features", ctypes.c_uint32),
        ("wq_fd", ctypes.c_uint32), ("resv", ctypes.c_uint32 * 3), ("sq_off", _SqOffsets), ("cq_off", _CqOffsets),
    )


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_int64), ("tv_nsec", ctypes.c_int64)]


class _GeteventsArg(ctypes.Structure):
    _fields_ = [("sigmask", ctypes.c_uint64), ("sigmask_sz", ctypes.c_uint32), ("min_wait_usec", ctypes.c_uint32),
                ("ts", ctypes.c_uint64)]


def _load_syscall() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syscall
    except (OSError, AttributeError):  # pragma: no cover - every Linux libc has syscall(2)
        return None
    fn.restype = ctypes.c_long
    # No argtypes: converting through them costs more than the system call itself (~1 µs). The
    # callers pass ints only where the kernel takes ``unsigned int``, and pointers and sizes as
    # ready-made ctypes objects (`_VoidP`, `_Size`), so every argument has its C width.
    return fn


_syscall = _load_syscall()
_VoidP = ctypes.c_void_p
_Size = ctypes.c_size_t
_NULL = _VoidP(0)
_NO_SIZE = _Size(0)

_FALLBACK = "use the epoll backend instead (--backend epoll, ServerConfig(backend='epoll'))"


def _disabled_hint() -> str:
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            value = f.read().strip()
    except OSError:
        return ""
    if value == "2":
        return " (sysctl kernel.io_uring_disabled=2: io_uring is switched off on this machine)"
    if value == "1":
        return " (sysctl kernel.io_uring_disabled=1: only members of kernel.io_uring_group may use io_uring)"
    return ""


def _unavailable(what: str, err: int) -> BackendUnavailableError:
    reason = f"{what} failed with {errno.errorcode.get(err, str(err))} ({os.strerror(err)})"
    if err == errno.ENOSYS:
        reason += " (this kernel was built without io_uring, or is older than 5.1)"
    elif err == errno.EPERM:
        reason += _disabled_hint() or " (io_uring is disabled here, by sysctl or by a seccomp profile such as a container's)"
    return BackendUnavailableError(f"backend 'io_uring' is not available: {reason}; {_FALLBACK}")


class _Reg:
    """One fd's registration: the poll request in flight (or about to be re-added)."""

    __slots__ = ("fd", "uid", "mask", "kind", "live")

    def __init__(self, fd: int, uid: int, mask: int, kind: int) -> None:
        self.fd = fd
        self.uid = uid
        self.mask = mask
        self.kind = kind
        self.live = True  # a poll request with this id is in the kernel (or queued for it)


class UringBackend:
    """Linux io_uring via poll requests: multishot edge-triggered streams, one-shot watches.

    ``entries`` is the submission ring's size and ``cq_entries`` the completion ring's; the
    defaults suit a worker, tests shrink them to reach the ring-full paths.
    """

    name = "io_uring"
    edge_triggered = True

    def __init__(self, entries: int = 256, cq_entries: int = 4096) -> None:
        if _syscall is None:
            raise BackendUnavailableError(f"backend 'io_uring' needs Linux; {_FALLBACK}")
        params = _Params()
        base = _IORING_SETUP_CQSIZE | _IORING_SETUP_CLAMP | _IORING_SETUP_SUBMIT_ALL
        fd = -1
        err = 0
        for extra in (_IORING_SETUP_COOP_TASKRUN, 0):  # COOP_TASKRUN: 5.19+; an older kernel says EINVAL
            ctypes.memset(ctypes.addressof(params), 0, ctypes.sizeof(params))
            params.flags = base | extra
            params.cq_entries = cq_entries
            fd = _syscall(_NR_IO_URING_SETUP, entries, _VoidP(ctypes.addressof(params)))
            if fd >= 0:
                break
            err = ctypes.get_errno()
            if err != errno.EINVAL:
                break
        if fd < 0:
            raise _unavailable(f"io_uring_setup(entries={entries})", err)
        self._fd = fd
        try:
            if params.features & _NEEDED_FEATURES != _NEEDED_FEATURES:
                raise BackendUnavailableError(
                    f"backend 'io_uring' needs Linux 5.11 or later (IORING_FEAT_EXT_ARG); {_FALLBACK}")
            self._map(params)
        except BaseException:
            os.close(fd)
            raise
        self._regs: dict[int, _Reg] = {}  # poll id -> registration
        self._by_fd: dict[int, _Reg] = {}  # fd -> its registration
        self._restart: list[_Reg] = []  # registrations to re-add before the next wait
        self._stash: dict[int, int] = {}  # events reaped outside `poll` (the ring filled up), for the next turn
        self._next_uid = 1
        self._arg = _GeteventsArg()
        self._ts = _Timespec()
        self._arg_addr = _VoidP(ctypes.addressof(self._arg))
        self._arg_size = _Size(ctypes.sizeof(self._arg))
        self._ts_addr = ctypes.addressof(self._ts)
        # A re-added poll completes at once when its fd is ready (a writable socket always is): so
        # that re-adding multishot polls ended by a full completion ring cannot fill it again and
        # keep ending them, at most a quarter of the ring's worth is re-added per turn. Readers
        # (the listener, the wake-up socket) are always re-added at once.
        self._restart_budget = max(1, self.cq_entries // 4)
        self.multishot_restarts = 0  #: multishot polls the kernel ended and this backend re-added
        self.early_submits = 0  #: times the submission ring filled up between two loop turns
        self.stale_completions = 0  #: completions of polls already removed (dropped, never reported)
        self.closed = False

    def _map(self, p: _Params) -> None:
        self.sq_entries = p.sq_entries
        self.cq_entries = p.cq_entries
        size = max(p.sq_off.array + p.sq_entries * 4, p.cq_off.cqes + p.cq_entries * _CQE_SIZE)
        size = (size + 63) & ~63  # memoryview casts below need a multiple of 8; the ring is page-sized
        self._ring = mmap.mmap(self._fd, size, mmap.MAP_SHARED | mmap.MAP_POPULATE,
                               mmap.PROT_READ | mmap.PROT_WRITE, offset=_IORING_OFF_SQ_RING)
        self._sqes = mmap.mmap(self._fd, p.sq_entries * _SQE_SIZE, mmap.MAP_SHARED | mmap.MAP_POPULATE,
                               mmap.PROT_READ | mmap.PROT_WRITE, offset=_IORING_OFF_SQES)
        ring = memoryview(self._ring)
        self._u32 = ring.cast("I")
        self._sq_head = p.sq_off.head // 4
        self._sq_tail_i = p.sq_off.tail // 4
        self._sq_flags = p.sq_off.flags // 4
        self._sq_mask = self._u32[p.sq_off.ring_mask // 4]
        self._cq_head = p.cq_off.head // 4
        self._cq_tail = p.cq_off.tail // 4
        self._cq_mask = self._u32[p.cq_off.ring_mask // 4]
        self._cqes_off = p.cq_off.cqes
        array = p.sq_off.array // 4
        for i in range(p.sq_entries):  # entry i always sits in slot i: the indirection array is fixed
            self._u32[array + i] = i
        self._sq_tail = self._u32[self._sq_tail_i]

    # -- submission ----------------------------------------------------------------------------
    def _push(self, opcode: int, fd: int, addr: int, length: int, events: int, uid: int) -> None:
        tail = self._sq_tail
        if (tail - self._u32[self._sq_head]) & 0xFFFFFFFF >= self.sq_entries:
            self._submit_early()
        _SQE.pack_into(self._sqes, (tail & self._sq_mask) * _SQE_SIZE,
                       opcode, 0, 0, fd, 0, addr, length, events, uid, 0, 0, 0)
        self._sq_tail = (tail + 1) & 0xFFFFFFFF

    def _enter(self, to_submit: int, wait: int, flags: int, arg: ctypes.c_void_p, argsz: ctypes.c_size_t) -> int:
        """``io_uring_enter``; returns what it returned, or -errno."""
        assert _syscall is not None
        self._u32[self._sq_tail_i] = self._sq_tail
        ret: int = _syscall(_NR_IO_URING_ENTER, self._fd, to_submit, wait, flags, arg, argsz)
        return ret if ret >= 0 else -ctypes.get_errno()

    def _pending(self) -> int:
        return int((self._sq_tail - self._u32[self._sq_head]) & 0xFFFFFFFF)

    def _submit_early(self) -> None:
        """The submission ring is full between two turns: hand it to the kernel now."""
        self.early_submits += 1
        for _ in range(100):
            pending = self._pending()
            if pending < self.sq_entries:
                return
            ret = self._enter(pending, 0, 0, _NULL, _NO_SIZE)
            if ret < 0 and ret not in (-errno.EINTR, -errno.EAGAIN, -errno.EBUSY):
                raise OSError(-ret, f"io_uring_enter (submit) failed: {os.strerror(-ret)}")
            if ret <= 0:
                # The kernel is short of room for completions: take them (kept for the next turn).
                self._reap(self._stash)
                self._enter(0, 0, _IORING_ENTER_GETEVENTS | _IORING_ENTER_EXT_ARG, self._zero_wait(), self._arg_size)
                self._reap(self._stash)
        raise OSError(errno.EBUSY, "io_uring: the submission ring stays full; the kernel accepts no new requests")

    def _zero_wait(self) -> ctypes.c_void_p:
        self._arg.ts = 0
        return self._arg_addr

    def _add(self, reg: _Reg) -> None:
        self._push(_IORING_OP_POLL_ADD, reg.fd, 0, _IORING_POLL_ADD_MULTI if reg.kind == _STREAM else 0,
                   reg.mask, reg.uid)
        reg.live = True

    def _new(self, fd: int, mask: int, kind: int) -> _Reg:
        uid = self._next_uid
        self._next_uid = uid + 1
        reg = _Reg(fd, uid, mask, kind)
        self._regs[uid] = reg
        self._by_fd[fd] = reg
        self._add(reg)
        return reg

    def _drop(self, reg: _Reg) -> None:
        """Forget ``reg``; if its poll is still in the kernel, queue its removal."""
        del self._regs[reg.uid]
        if self._by_fd.get(reg.fd) is reg:
            del self._by_fd[reg.fd]
        if reg.live:
            reg.live = False
            self._push(_IORING_OP_POLL_REMOVE, -1, reg.uid, 0, 0, _REMOVE_ID)

    @property
    def registrations(self) -> int:
        """How many fds have a registration (streams, readers and armed watches)."""
        return len(self._by_fd)

    # -- the Backend protocol --------------------------------------------------------------------
    def _check_free(self, fd: int) -> None:
        if self.closed:
            raise ValueError("the io_uring backend is closed")
        if fd < 0:
            raise ValueError(f"cannot register fd {fd} (a closed socket?)")
        if fd in self._by_fd:
            raise FileExistsError(errno.EEXIST, f"fd {fd} is already registered with this io_uring backend")

    def add_stream(self, fd: int) -> None:
        self._check_free(fd)
        self._new(fd, _STREAM_EVENTS, _STREAM)

    def want_read(self, fd: int, on: bool) -> None:
        pass  # edge-triggered, as on epoll: an owner that stops reading gets no further events anyway

    def want_write(self, fd: int, on: bool) -> None:
        pass  # streams always watch OUT edges

    def add_reader(self, fd: int) -> None:
        self._check_free(fd)
        check_pollable(fd)
        self._new(fd, READABLE, _READER)

    def arm(self, fd: int, mask: int) -> None:
        reg = self._by_fd.get(fd)
        if reg is not None:
            if reg.kind != _WATCH:
                raise FileExistsError(errno.EEXIST, f"fd {fd} is registered as a stream or reader, not a watch")
            if reg.mask == mask and reg.live:
                return  # that very poll is still waiting
            self._drop(reg)
        if self.closed:
            raise ValueError("the io_uring backend is closed")
        check_pollable(fd)
        self._new(fd, mask, _WATCH)

    def disarm(self, fd: int) -> None:
        self.remove(fd)

    def remove(self, fd: int) -> None:
        reg = self._by_fd.get(fd)
        if reg is not None and not self.closed:
            self._drop(reg)

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        restart = self._restart
        if restart:
            self._restart = []
            regs = self._regs
            budget = self._restart_budget
            for reg in restart:
                if regs.get(reg.uid) is reg and not reg.live:
                    if reg.kind == _STREAM:
                        if budget == 0:
                            self._restart.append(reg)  # next turn: see `_restart_budget`
                            continue
                        budget -= 1
                    self._add(reg)
        arg = self._arg
        if timeout < 0:
            wait = 1
            arg.ts = 0  # no timeout
        elif timeout == 0:
            wait = 0
            arg.ts = 0
        else:
            wait = 1
            ts = self._ts
            sec = int(timeout)
            ts.tv_sec = sec
            ts.tv_nsec = int((timeout - sec) * 1e9)
            arg.ts = self._ts_addr
        u32 = self._u32
        tail = self._sq_tail
        u32[self._sq_tail_i] = tail  # publish what was queued since the last turn...
        ret = _syscall(_NR_IO_URING_ENTER, self._fd, (tail - u32[self._sq_head]) & 0xFFFFFFFF,  # type: ignore[misc]
                       wait, _IORING_ENTER_GETEVENTS | _IORING_ENTER_EXT_ARG, self._arg_addr, self._arg_size)
        if ret < 0:  # ...and submit it in the call that waits (`_enter`, inlined: this is every turn)
            ret = -ctypes.get_errno()
        if ret < 0 and ret not in (-errno.ETIME, -errno.EINTR, -errno.EAGAIN, -errno.EBUSY):
            raise OSError(-ret, f"io_uring_enter failed: {os.strerror(-ret)}")
        events, self._stash = self._stash, {}
        self._reap(events)
        if u32[self._sq_flags] & _IORING_SQ_CQ_OVERFLOW:
            # Completions the ring had no room for wait in the kernel: flush them in, then read them.
            self._enter(0, 0, _IORING_ENTER_GETEVENTS | _IORING_ENTER_EXT_ARG, self._zero_wait(), self._arg_size)
            self._reap(events)
        return list(events.items())

    def _reap(self, events: dict[int, int]) -> None:
        """Read every completion in the ring into ``events`` (fd -> merged mask)."""
        u32 = self._u32
        head = u32[self._cq_head]
        tail = u32[self._cq_tail]
        count = (tail - head) & 0xFFFFFFFF
        if not count:
            return
        # One copy of the entries (two where they wrap), unpacked in C: cheaper than three
        # memoryview reads per entry.
        ring = self._ring
        base = self._cqes_off
        start = head & self._cq_mask
        first = min(count, self.cq_entries - start)
        raw = ring[base + start * _CQE_SIZE:base + (start + first) * _CQE_SIZE]
        if count > first:
            raw += ring[base:base + (count - first) * _CQE_SIZE]
        u32[self._cq_head] = tail  # the entries are copied: the kernel may reuse their slots
        regs = self._regs
        for uid, res, flags in _CQE.iter_unpack(raw):
            reg = regs.get(uid)
            if reg is None:  # a removal's own completion, or one from a poll already forgotten
                if uid != _REMOVE_ID:
                    self.stale_completions += 1
                continue
            fd = reg.fd
            if res < 0:
                log.debug("io_uring poll on fd %d ended with %s", fd, errno.errorcode.get(-res, str(-res)))
                reg.live = False
                self._drop(reg)
                events[fd] = events.get(fd, 0) | BROKEN
                continue
            if not flags & _IORING_CQE_F_MORE:
                reg.live = False
                if reg.kind == _WATCH:
                    self._drop(reg)
                else:  # a reader's one-shot, or a multishot stream poll the kernel ended: re-add
                    if reg.kind == _STREAM:
                        self.multishot_restarts += 1
                    self._restart.append(reg)
            if res:
                events[fd] = events.get(fd, 0) | res

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._regs.clear()
        self._by_fd.clear()
        self._restart.clear()
        self._u32.release()
        self._ring.close()
        self._sqes.close()
        os.close(self._fd)  # the kernel cancels every request and drops their file references


def uring_unavailable_reason() -> str | None:
    """None if an io_uring backend can be built here, else the error message saying why not."""
    try:
        UringBackend(entries=2, cq_entries=4).close()
    except BackendUnavailableError as exc:
        return str(exc)
    return None
