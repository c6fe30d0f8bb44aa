"""Passwords (argon2id), bearer tokens (JWT HS256) and API keys — no HTTP here.

Theory of operation
-------------------
**Passwords** are stored as argon2id hashes (``argon2-cffi``'s `PasswordHasher`, whose default
parameters follow RFC 9106's recommended low-memory profile). Verifying one is deliberately slow
and is therefore never done on the event loop: the handler runs `check_password` through
`vanilla_async.offload.Offloader`. An unknown user is checked against a dummy hash of the same parameters, so
the response time does not tell which user names exist.

**Tokens** are JWTs signed with HS256 (``PyJWT``) carrying ``sub``, ``iat``, ``exp`` and ``iss``.
Verification pins the algorithm list to ``["HS256"]`` (no ``alg: none``, no key confusion),
requires all four claims and checks ``exp`` with no leeway; any failure — bad signature,
tampering, expiry, wrong issuer, garbage — is an `InvalidToken` naming the reason. The secret is
shared by every worker: it is chosen before the fork.

**API keys** look like ``<id>.<secret>``. Only the SHA-256 of each secret is kept; a presented
key is looked up by its public id and its secret's digest compared with `hmac.compare_digest`,
in constant time, so timing reveals nothing about how much of a secret was right.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any, Mapping

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from vanilla_async import ConfigError, VanillaError

ISSUER = "examples.auth"


class AuthConfigError(ConfigError):
    """A credential setting is unusable (short JWT secret, malformed API key, bad hash)."""


class InvalidToken(VanillaError):
    """A bearer token was refused; the message says why (for ``error_description``)."""


def check_password(hasher: PasswordHasher, stored_hash: str, password: str) -> bool:
    """True when ``password`` matches ``stored_hash`` (blocking: run it in a thread)."""
    try:
        return hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Tokens:
    """Issue and verify HS256 JWTs."""

    secret: bytes
    ttl: int = 900  #: seconds a token is valid

    def __post_init__(self) -> None:
        if len(self.secret) < 32:
            raise AuthConfigError(
                f"the JWT secret must be at least 32 bytes for HS256 (RFC 7518 §3.2), got {len(self.secret)}")
        if self.ttl < 1:
            raise AuthConfigError(f"ttl must be >= 1 second, got {self.ttl!r}")

    def issue(self, subject: str, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        claims = {"sub": subject, "iat": issued, "exp": issued + self.ttl, "iss": ISSUER}
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token; `InvalidToken` otherwise."""
        try:
            return jwt.decode(token, self.secret, algorithms=["HS256"], issuer=ISSUER,
                              options={"require": ["sub", "iat", "exp", "iss"]})
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired; log in again") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"the token is invalid: {exc}") from None


class ApiKeys:
    """``<id>.<secret>`` keys; only secrets' SHA-256 digests are held."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        """``keys``: full key → the name of its owner (kept for the response)."""
        self._digests: dict[str, tuple[bytes, str]] = {}
        for key, owner in keys.items():
            key_id, dot, secret = key.partition(".")
            if not dot or not key_id or len(secret) < 16 or not key.isascii():
                raise AuthConfigError(f"API key for {owner!r} must be '<id>.<secret>' in ASCII with a secret of "
                                      "at least 16 characters")
            self._digests[key_id] = (hashlib.sha256(secret.encode()).digest(), owner)

    def owner(self, presented: bytes) -> str | None:
        """The owner of a valid key, else ``None`` (constant time in the secret)."""
        key_id, dot, secret = presented.partition(b".")
        entry = self._digests.get(key_id.decode("latin-1")) if dot else None
        digest = hashlib.sha256(secret).digest()
        if entry is None:
            hmac.compare_digest(digest, digest)  # same work for unknown ids
            return None
        return entry[1] if hmac.compare_digest(digest, entry[0]) else None


def new_secret() -> bytes:
    return secrets.token_bytes(32)
