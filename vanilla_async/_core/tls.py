"""TLS for the engine: `TLSConfig`, `build_context`, `reload_certificates` and `TLSTransport`
(the cleartext one is `transport.PlainTransport`; both keep the interface `transport.Transport` describes).

Theory of operation
===================

**Why a memory BIO.** The epoll backend is edge-triggered: a connection reads until the socket says
"drained" (a ``recv`` shorter than asked, or ``EAGAIN``) and then waits for the next edge. An
``ssl.SSLSocket`` breaks that rule: OpenSSL reads the socket in record-sized pieces on its own, may
hold decrypted bytes the kernel no longer shows as readable (no new edge will come for them), and
turns one read into several syscalls. So `TLSTransport` keeps the socket plain and puts TLS beside
it: an ``ssl.SSLObject`` between two ``ssl.MemoryBIO``\\ s. ``recv`` does one large raw ``recv``
(64 KiB), feeds the ciphertext to the incoming BIO, and reads plaintext from the ``SSLObject``; a raw
read is repeated only while it came back full. Whatever the TLS engine wants to send (handshake
flights, session tickets, alerts, close_notify, application records) lands in the outgoing BIO and
is written with a plain ``send``.

**The drain contract** (what the edge-triggered connection relies on): ``recv(n)`` returns exactly
``n`` bytes whenever more *may* be available (leftover plaintext stays inside the ``SSLObject`` for
the next call); a shorter return means the socket was drained *and* no decrypted plaintext is left.
``BlockingIOError`` means "nothing now": the handshake is not finished, or only part of a record
arrived. ``b""`` is EOF: a close_notify, or a TCP FIN without one (a "ragged" EOF is treated as an
ordinary EOF: HTTP/1.1 framing, not TLS, decides whether a message was complete). Any TLS failure
(cleartext HTTP sent to the TLS port, a corrupt record, a handshake the policy refuses) raises
``ssl.SSLError``, which is an ``OSError``, after the alert OpenSSL produced was sent best-effort.

**Writing and backpressure.** ``send(data)`` encrypts 256 KiB of plaintext at a time (whole 16 KiB
records: OpenSSL splits them) into the outgoing BIO and writes the ciphertext with one ``send``, and
goes on with the next slice while the socket takes everything: a short count means the socket is
full, as for a plain socket (an edge-triggered EPOLLOUT only comes after the socket was full). The
plaintext of the last slice is *accepted* whether or not the socket took all of its ciphertext: what
it did not take stays in the transport (``pending``) and ``on_blocked()`` is called once, so the
connection arms EPOLLOUT and its write deadline and later calls ``flush_pending()``. While ciphertext is pending no
new plaintext is accepted (``BlockingIOError``): the buffer is bounded by one call's worth. For the
engine the transport therefore looks like a non-blocking socket whose ``send`` may return a count
"too large" (the ciphertext it still holds); ``on_blocked`` is how it learns that. ``sendfile`` would
bypass TLS, so ``sendfile_ok`` is False and the engine reads the file and ``send``\\ s it.

**Handshake.** Done inside ``recv`` while ``handshaking``: each call feeds what arrived and runs
``do_handshake``; its output is written at once. A client that stalls never makes ``recv`` return
anything but ``BlockingIOError``, and the server sends nothing the protocol does not require; the
connection reaps it with a deadline (`TLSConfig.handshake_timeout`). ``send`` before the handshake
completed raises ``BlockingIOError`` (a server speaks after the client's request, so the engine never
does this). Renegotiation is disabled (``OP_NO_RENEGOTIATION``), so application data never needs a
second handshake.

**Context policy** (`build_context`): a server context, TLS 1.2 minimum (1.3 preferred), no
compression, server cipher preference, TLS 1.2 suites limited to ECDHE key exchange with AEAD ciphers
(AES-GCM, ChaCha20-Poly1305; TLS 1.3 suites are OpenSSL's, all AEAD), ALPN from `TLSConfig.alpn`,
session tickets on. Every failure to load a file is a `ConfigError` that names the file and says
what is wrong in plain words; the password is always supplied through a callback, so an encrypted key
without a password fails with a message instead of OpenSSL prompting on the terminal. A caller's own
``ssl.SSLContext`` is used exactly as given (Python cannot tell whether ALPN was set on it, and
overriding the caller's choices would be surprising): set ALPN on it yourself with
``ctx.set_alpn_protocols(["http/1.1"])``.

**Resumption across workers.** OpenSSL makes the session-ticket keys when the ``SSL_CTX`` is created.
A context built *once in the supervisor before forking* is inherited by every worker with the same
keys, so a ticket issued by one worker is accepted by whichever worker ``SO_REUSEPORT`` hands the
resumed connection (stateless tickets: TLS 1.3 and TLS 1.2 alike; verified with ``openssl s_client
-sess_out``/``-sess_in`` against two forked processes in ``tests/test_tls.py``). A context built in
each worker after the fork has its own keys: resumption then only works when the same worker is hit.

**Certificate rotation** (`reload_certificates`): the files are copied once into a private temporary
directory (so the bytes checked are the bytes loaded, even if the files change meanwhile), loaded
into a scratch context to validate them, and only then loaded into the live context. New
``SSLObject``\\ s get the new certificate; existing connections keep theirs (OpenSSL copies the
certificate into each ``SSL`` at creation); the live context's ticket keys are untouched, so sessions
survive a rotation. Caveat: OpenSSL keeps one certificate *per key type*; rotating from an ECDSA to
an RSA certificate (or back) adds the new one beside the old instead of replacing it, and clients
that accept both types may still be offered the old one: restart to change key types.
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import os
import shutil
import socket
import ssl
import tempfile
from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError

__all__ = ("DEFAULT_HANDSHAKE_TIMEOUT", "RECV_SIZE", "SEND_PLAINTEXT_MAX", "TLS12_CIPHERS", "TLSConfig", "TLSTransport", "build_context",
           "reload_certificates")

log = logging.getLogger("vanilla_async")

#: TLS 1.2 suites: ECDHE key exchange (forward secrecy) with an AEAD cipher; nothing else.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS:!SHA1"
#: raw bytes asked of the socket by one ``recv`` syscall
RECV_SIZE = 64 * 1024
#: plaintext encrypted by one ``send`` call at most (16 whole 16 KiB records)
SEND_PLAINTEXT_MAX = 256 * 1024

#: the handshake deadline when TLS comes as a ready ``ssl.SSLContext`` (a `TLSConfig` has its own)
DEFAULT_HANDSHAKE_TIMEOUT = 10.0

_CERT_REQS = {0: ssl.CERT_NONE, 1: ssl.CERT_OPTIONAL, 2: ssl.CERT_REQUIRED}


@dataclass(frozen=True)
class TLSConfig:
    """Where the certificate and key are, and how to treat clients (the ``--ssl-*`` CLI flags).

    ``certfile``: PEM certificate chain (leaf first); may also hold the key when ``keyfile`` is None.
    ``keyfile``: PEM private key; ``password`` decrypts it if it is encrypted.
    ``ca_certs``: PEM CA bundle used to verify client certificates.
    ``cert_reqs``: 0 no client certificate, 1 optional, 2 required (as uvicorn's ``--ssl-cert-reqs``).
    ``alpn``: protocols offered in ALPN, in order of preference.
    ``handshake_timeout``: seconds a connection may spend in the handshake before it is closed.
    """

    certfile: str
    keyfile: str | None = None
    password: str | None = None
    ca_certs: str | None = None
    cert_reqs: int = ssl.CERT_NONE
    alpn: tuple[str, ...] = ("h2", "http/1.1")
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT

    def __post_init__(self) -> None:
        if not isinstance(self.certfile, str) or not self.certfile:
            raise ConfigError(f"TLSConfig.certfile must be the path of a PEM certificate file, got {self.certfile!r}")
        for name in ("keyfile", "password", "ca_certs"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"TLSConfig.{name} must be a non-empty string or None, got {value!r}")
        if isinstance(self.cert_reqs, bool) or self.cert_reqs not in _CERT_REQS:
            raise ConfigError(f"TLSConfig.cert_reqs must be 0 (no client certificate), 1 (optional) or 2 "
                              f"(required), got {self.cert_reqs!r}")
        if self.cert_reqs != ssl.CERT_NONE and self.ca_certs is None:
            raise ConfigError("TLSConfig.cert_reqs asks for client certificates but ca_certs is not set: give the CA "
                              "bundle that signs them (--ssl-ca-certs)")
        if not isinstance(self.alpn, tuple) or not self.alpn:
            raise ConfigError(f"TLSConfig.alpn must be a non-empty tuple of protocol names, got {self.alpn!r}")
        for proto in self.alpn:
            if not isinstance(proto, str) or not proto.isascii() or not 1 <= len(proto) <= 255:
                raise ConfigError(f"TLSConfig.alpn: each protocol must be an ASCII string of 1..255 characters "
                                  f"(e.g. 'http/1.1'), got {proto!r}")
        if isinstance(self.handshake_timeout, bool) or not isinstance(self.handshake_timeout, (int, float)) \
                or not self.handshake_timeout > 0:
            raise ConfigError(f"TLSConfig.handshake_timeout must be > 0 seconds, got {self.handshake_timeout!r}")


# -- building and reloading contexts -----------------------------------------------------------------
def _check_readable(path: str, what: str) -> str:
    """The file's text; ConfigError if it is missing or cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError(f"TLS {what} file {path!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"TLS {what} file {path!r} is a directory, not a file") from None
    except PermissionError:
        raise ConfigError(f"TLS {what} file {path!r} cannot be read: permission denied "
                          f"(the server runs as uid {os.getuid()})") from None
    except OSError as exc:
        raise ConfigError(f"TLS {what} file {path!r} cannot be read: {exc.strerror}") from None
    return data.decode("latin-1")


def _load_chain(context: ssl.SSLContext, tls: TLSConfig, certfile: str, keyfile: str | None) -> None:
    """Load cert+key into ``context``; ConfigError naming ``tls``'s file names on any failure.

    ``certfile``/``keyfile`` are the paths actually read (they may be private copies); messages use
    the names in ``tls``.
    """
    cert_text = _check_readable(certfile, "certificate")
    if "-----BEGIN CERTIFICATE-----" not in cert_text:
        raise ConfigError(f"TLS certificate file {tls.certfile!r} is not a PEM certificate "
                          "(no '-----BEGIN CERTIFICATE-----' block)")
    key_name = tls.keyfile or tls.certfile
    key_text = _check_readable(keyfile, "key") if keyfile is not None else cert_text
    if "PRIVATE KEY-----" not in key_text:
        where = "key file" if tls.keyfile else "certificate file (no keyfile given)"
        raise ConfigError(f"TLS {where} {key_name!r} holds no PEM private key (no '-----BEGIN ... PRIVATE KEY-----' "
                          "block)")
    asked = False

    def password() -> bytes:
        nonlocal asked
        asked = True
        return (tls.password or "").encode()

    try:
        context.load_cert_chain(certfile, keyfile, password=password)
    except ssl.SSLError as exc:
        reason = (exc.reason or "").upper()
        if "KEY_VALUES_MISMATCH" in reason:
            raise ConfigError(f"TLS key {key_name!r} does not match the certificate in {tls.certfile!r}") from None
        if asked and tls.password is None:
            raise ConfigError(f"TLS key {key_name!r} is encrypted and no password was given "
                              "(--ssl-keyfile-password)") from None
        if asked:
            raise ConfigError(f"TLS key {key_name!r}: wrong password (it could not be decrypted)") from None
        raise ConfigError(f"TLS certificate {tls.certfile!r} / key {key_name!r} could not be loaded: {exc}") from None


def _load_ca(context: ssl.SSLContext, tls: TLSConfig, ca_certs: str) -> None:
    text = _check_readable(ca_certs, "CA certificates")
    assert tls.ca_certs is not None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(f"TLS CA certificates file {tls.ca_certs!r} holds no PEM certificate")
    try:
        context.load_verify_locations(cafile=ca_certs)
    except ssl.SSLError as exc:
        raise ConfigError(f"TLS CA certificates file {tls.ca_certs!r} could not be loaded: {exc}") from None


def _new_context(tls: TLSConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= (ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
                        | ssl.OP_SINGLE_ECDH_USE | ssl.OP_IGNORE_UNEXPECTED_EOF)
    context.options &= ~ssl.OP_NO_TICKET
    context.set_ciphers(TLS12_CIPHERS)
    context.set_alpn_protocols(_available(tls.alpn))
    context.verify_mode = _CERT_REQS[tls.cert_reqs]
    return context


def _available(alpn: tuple[str, ...]) -> list[str]:
    """``alpn`` without ``h2`` when the h2 package is missing (offering it would break HTTP/2 clients)."""
    if "h2" in alpn and importlib.util.find_spec("h2") is None:
        log.warning("TLS: not offering ALPN h2: the h2 package is missing (pip install 'vanilla-async[http2]')")
        return [proto for proto in alpn if proto != "h2"]
    return list(alpn)


def build_context(tls: TLSConfig | ssl.SSLContext) -> ssl.SSLContext:
    """A server ``SSLContext`` for ``tls``; a given ``SSLContext`` is returned unchanged.

    Build it once, in the supervisor, before the workers fork: they then share its session-ticket keys.
    Raises `ConfigError` naming the file and the problem (missing, unreadable, not PEM, key does not
    match, wrong or missing password, bad CA file).
    """
    if isinstance(tls, ssl.SSLContext):
        if tls.protocol == ssl.PROTOCOL_TLS_CLIENT:
            raise ConfigError("ServerConfig.tls is a client SSLContext (PROTOCOL_TLS_CLIENT); build it with "
                              "ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER) or ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)")
        return tls
    if not isinstance(tls, TLSConfig):
        raise ConfigError(f"expected a TLSConfig or an ssl.SSLContext, got {tls!r}")
    context = _new_context(tls)
    _load_chain(context, tls, tls.certfile, tls.keyfile)
    if tls.ca_certs is not None:
        _load_ca(context, tls, tls.ca_certs)
    return context


def reload_certificates(context: ssl.SSLContext, tls: TLSConfig) -> bool:
    """Load ``tls``'s certificate and key into the live ``context``, all or nothing.

    The files are copied into a private directory, validated in a scratch context, and only then
    loaded into ``context`` (from the same copies). Returns True on success; on failure logs why
    (logger ``"vanilla_async"``) and returns False, leaving ``context`` serving the old certificate.
    """
    scratch_dir = tempfile.mkdtemp(prefix="vanilla-tls-")
    try:
        certfile = os.path.join(scratch_dir, "cert.pem")
        keyfile = os.path.join(scratch_dir, "key.pem") if tls.keyfile is not None else None
        try:
            shutil.copyfile(tls.certfile, certfile)
            if keyfile is not None:
                assert tls.keyfile is not None
                shutil.copyfile(tls.keyfile, keyfile)
        except OSError as exc:
            log.error("TLS reload refused, keeping the current certificate: cannot read %r: %s",
                      exc.filename, exc.strerror)
            return False
        try:
            _load_chain(_new_context(tls), tls, certfile, keyfile)
            _load_chain(context, tls, certfile, keyfile)
        except ConfigError as exc:
            log.error("TLS reload refused, keeping the current certificate: %s", exc)
            return False
        log.info("TLS certificate reloaded from %s", tls.certfile)
        return True
    finally:
        shutil.rmtree(scratch_dir, ignore_errors=True)


# -- transports ---------------------------------------------------------------------------------------
class TLSTransport:
    """TLS over a non-blocking socket through an ``SSLObject`` and two memory BIOs (see the module doc)."""

    __slots__ = ("sock", "fd", "handshaking", "alpn", "_incoming", "_outgoing", "_ssl", "_out", "_out_at",
                 "_on_blocked", "_blocked", "_eof", "_closed", "_leftover")
    sendfile_ok = False

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, on_blocked: Callable[[], None]) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.handshaking = True
        self.alpn: str | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl: ssl.SSLObject | None = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._out: bytes = b""  # ciphertext the socket has not taken yet, from self._out_at on
        self._out_at = 0
        self._on_blocked = on_blocked
        self._blocked = False  # on_blocked() called and pending not yet flushed
        self._eof = False  # EOF seen (close_notify, or FIN on the raw socket)
        self._leftover = True  # OpenSSL may hold decrypted plaintext (see recv): check once at first
        self._closed = False

    @property
    def pending(self) -> int:
        """Ciphertext accepted but not yet written to the socket."""
        return len(self._out) - self._out_at

    def _obj(self) -> ssl.SSLObject:
        obj = self._ssl
        if obj is None:
            raise OSError(errno.EBADF, "TLS transport is closed")
        return obj

    # -- writing ciphertext
    def _write_out(self) -> None:
        """Move the outgoing BIO's ciphertext to the socket; keep what it does not take, signal once."""
        if self._outgoing.pending:
            data = self._outgoing.read()
            if self._out_at < len(self._out):
                self._out = self._out[self._out_at:] + data
            else:
                self._out = data
            self._out_at = 0
        if self._out_at < len(self._out):
            self.flush_pending()
            if self._out_at < len(self._out) and not self._blocked:
                self._blocked = True
                self._on_blocked()

    def flush_pending(self) -> bool:
        """Write pending ciphertext; True when none is left (False: wait until the socket is writable)."""
        out, at = self._out, self._out_at
        if at >= len(out):
            return True
        try:
            sent = self.sock.send(memoryview(out)[at:])
        except BlockingIOError:
            return False
        at += sent
        if at >= len(out):
            self._out, self._out_at, self._blocked = b"", 0, False
            return True
        self._out_at = at
        return False

    def _flush_alert(self) -> None:
        """Best effort: send what OpenSSL queued (an alert) before the caller drops the connection."""
        try:
            if self._outgoing.pending:
                self._out = self._out[self._out_at:] + self._outgoing.read()
                self._out_at = 0
            self.flush_pending()
        except OSError:
            pass

    # -- the transport interface
    def recv(self, n: int) -> bytes:
        """1..n bytes of plaintext, ``b""`` at EOF, BlockingIOError when none now (see the drain contract)."""
        obj = self._ssl
        if obj is None or self.handshaking or self._eof:
            return self._recv_handshaking(n)
        # The session is up: the keep-alive hot path. ``SSLObject.read`` is only called when there is
        # something to decrypt (ciphertext in the incoming BIO, or plaintext OpenSSL holds): probing
        # until SSLWantReadError costs a raised exception per call.
        incoming = self._incoming
        chunks: list[bytes] = []
        size = 0
        drained = must_read = False
        # OpenSSL can hold plaintext only when a read filled its request exactly (the rest of that
        # record is inside it): only then is ``obj.pending()`` worth a call.
        left = self._leftover
        while True:
            while size < n and (must_read or incoming.pending or (left and obj.pending())):
                must_read = False
                want = n - size
                try:
                    chunk = obj.read(want)
                except ssl.SSLWantReadError:
                    break  # (a partial record: the rest is still on its way)
                except ssl.SSLZeroReturnError:
                    self._eof = True
                    break
                except ssl.SSLEOFError:  # a FIN without close_notify: an ordinary EOF (see _recv_handshaking)
                    self._eof = True
                    self._outgoing.read()
                    break
                except ssl.SSLError:
                    self._flush_alert()
                    raise
                if not chunk:  # close_notify
                    self._eof = True
                    break
                left = len(chunk) == want
                chunks.append(chunk)
                size += len(chunk)
            if self._outgoing.pending:  # e.g. a KeyUpdate answer
                self._write_out()
            if size >= n or self._eof or drained:
                self._leftover = left
                if size or self._eof:
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
                raise BlockingIOError(errno.EAGAIN, "no TLS plaintext available now")
            try:
                raw = self.sock.recv(RECV_SIZE)
            except BlockingIOError:
                drained = True
                continue
            if not raw:
                incoming.write_eof()
                drained = must_read = True  # (one read to learn how the session ended)
                continue
            incoming.write(raw)
            if len(raw) < RECV_SIZE:
                drained = True

    def _recv_handshaking(self, n: int) -> bytes:
        """`recv` while the handshake runs (or after EOF): the handshake steps, then any plaintext."""
        obj = self._obj()
        got = bytearray()
        drained = False
        while True:
            if self.handshaking:
                try:
                    obj.do_handshake()
                except ssl.SSLWantReadError:
                    self._write_out()
                except ssl.SSLError:
                    self._flush_alert()
                    raise
                else:
                    self.handshaking = False
                    self.alpn = obj.selected_alpn_protocol()
                    self._write_out()
            if not self.handshaking and not self._eof:
                try:
                    while len(got) < n:
                        chunk = obj.read(n - len(got))
                        if not chunk:  # close_notify (Python returns b"" once the shutdown was received)
                            self._eof = True
                            break
                        got += chunk
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLZeroReturnError:
                    self._eof = True
                except ssl.SSLEOFError:  # a FIN without close_notify: an ordinary EOF for HTTP, so
                    self._eof = True     # drop the fatal alert OpenSSL queued for it (a client would
                    self._outgoing.read()  # read "decode error" instead of the end of its responses)
                except ssl.SSLError:
                    self._flush_alert()
                    raise
                if self._outgoing.pending:  # e.g. a KeyUpdate answer
                    self._write_out()
                if len(got) >= n:
                    return bytes(got)
            if self._eof or drained:
                if got or self._eof:
                    return bytes(got)
                raise BlockingIOError(errno.EAGAIN, "no TLS plaintext available now")
            try:
                raw = self.sock.recv(RECV_SIZE)
            except BlockingIOError:
                drained = True
                continue
            if not raw:
                self._incoming.write_eof()
                if self.handshaking:  # FIN before the handshake finished: EOF, nothing to decrypt
                    self._eof = True
                    return b""
                drained = True
                continue
            self._incoming.write(raw)
            if len(raw) < RECV_SIZE:
                drained = True

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Encrypt up to 256 KiB of ``data``; how many bytes were accepted (see the module doc)."""
        obj = self._ssl
        if obj is None:
            raise OSError(errno.EBADF, "TLS transport is closed")
        if self._out_at < len(self._out) and not self.flush_pending():
            raise BlockingIOError(errno.EAGAIN, "TLS ciphertext from before is still waiting for the socket")
        if self.handshaking:
            raise BlockingIOError(errno.EAGAIN, "the TLS handshake has not completed yet")
        nbytes = len(data) if data.__class__ is not memoryview else memoryview(data).nbytes
        outgoing = self._outgoing
        total = 0
        # Encrypt and write in slices until the socket stops taking ciphertext: a count short of
        # len(data) must mean "the socket is full" (as for a plain socket), because that is what makes
        # an edge-triggered EPOLLOUT come; stopping after one slice with room left would wait forever.
        while total < nbytes:
            if total == 0 and nbytes <= SEND_PLAINTEXT_MAX:
                total = obj.write(data)  # (the usual case: one slice, no view)
            else:
                total += obj.write(memoryview(data)[total:total + SEND_PLAINTEXT_MAX])
            ciphertext = outgoing.read()
            try:
                sent = self.sock.send(ciphertext)
            except BlockingIOError:
                sent = 0
            if sent < len(ciphertext):  # the socket is full: keep the rest, signal once
                self._out, self._out_at = ciphertext, sent
                if not self._blocked:
                    self._blocked = True
                    self._on_blocked()
                break
        return total

    def shutdown_write(self) -> None:
        """Send close_notify (best effort, never blocks), then shut the socket's write side."""
        obj = self._ssl
        if obj is not None and not self.handshaking:
            try:
                obj.unwrap()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass  # close_notify is queued; the peer's answer is not awaited
            except (ssl.SSLError, ValueError):
                pass
            self._flush_alert()
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        """Send close_notify if the session is up (best effort), close the socket (idempotent), and
        release the SSL object and buffers."""
        if self._closed:
            return
        obj = self._ssl
        if obj is not None and not self.handshaking:
            try:
                obj.unwrap()
            except (ssl.SSLError, ValueError, OSError):
                pass  # (SSLWantRead: close_notify is queued; the peer's answer is not awaited)
            self._flush_alert()
        self._closed = True
        self._ssl = None
        self._out, self._out_at = b"", 0
        self.sock.close()
