"""examples.auth over real sockets: login, tokens, API keys, and hashing that never stalls the loop."""

from __future__ import annotations

import json
import select
import signal
import threading
import time
from pathlib import Path
from typing import Any, Literal

import jwt
import pytest
from argon2 import PasswordHasher

from examples.auth import (
    ApiKeys,
    AuthConfigError,
    AuthState,
    InvalidToken,
    Settings,
    Tokens,
    check_password,
    make_config,
    settings_from_env,
)
from vanilla_async.testing import Client, Response, ServerProcess, TestServer, serve

ROOT = Path(__file__).resolve().parents[2]
FAST = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)  # real argon2id, test-sized
SECRET = b"s" * 32
API_KEY = "ops.0123456789abcdef-secret"
NONE_HEADER = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()


class GatedHasher(PasswordHasher):
    """A real argon2id hasher whose ``verify`` waits at a gate the test opens: the test then knows
    for certain that a hash is in progress while it talks to the server."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8192, parallelism=1)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.entered.set()
        if not self.gate.wait(10):
            raise TimeoutError("the test never opened the gate")
        return super().verify(hash, password)


def settings(hasher: PasswordHasher = FAST, **kwargs: Any) -> Settings:
    return Settings(users={"alice": hasher.hash("wonderland")}, tokens=Tokens(SECRET, ttl=60),
                    api_keys=ApiKeys({API_KEY: "ops-team"}), hasher=hasher, **kwargs)


def login_request(username: str = "alice", password: str = "wonderland") -> bytes:
    body = json.dumps({"username": username, "password": password}).encode()
    return b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body), body)


def get(path: bytes, *headers: bytes) -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def bearer(token: str | bytes) -> bytes:
    return b"Authorization: Bearer " + (token.encode() if isinstance(token, str) else token)


def log_in(server: TestServer) -> str:
    r = server.request(login_request())
    assert r.status == 200, r.body
    assert r.header("cache-control") == b"no-store"
    answer = json.loads(r.body)
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 60
    return str(answer["access_token"])


def assert_401(r: Response, challenge: bytes) -> None:
    assert r.status == 401
    assert r.header("www-authenticate") == challenge, r.header("www-authenticate")


# -- login --------------------------------------------------------------------------------------------
def test_login_then_the_token_opens_me() -> None:
    with serve(make_config(settings())) as server:
        token = log_in(server)
        r = server.request(get(b"/me", bearer(token)))
    assert r.status == 200 and json.loads(r.body)["user"] == "alice"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], issuer="examples.auth")
    assert claims["exp"] - claims["iat"] == 60 and jwt.get_unverified_header(token)["alg"] == "HS256"


@pytest.mark.parametrize("username, password", [("alice", "wrong"), ("mallory", "wonderland"), ("alice", "")])
def test_a_bad_password_or_unknown_user_is_401(username: str, password: str) -> None:
    with serve(make_config(settings())) as server:
        r = server.request(login_request(username, password))
    assert_401(r, b'Bearer realm="examples.auth"')
    assert json.loads(r.body) == {"error": "authentication required"}


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[1, 2]", b'{"username": "alice"}', b'{"username": 1, "password": "x"}',
])
def test_a_login_body_that_is_not_the_expected_json_is_400(body: bytes) -> None:
    with serve(make_config(settings())) as server:
        r = server.request(b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        assert r.status == 400
        assert server.request(get(b"/login")).status == 405
        big = b"x" * 5000
        assert server.request(b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n" + big).status == 413


def test_passwords_are_argon2id() -> None:
    s = settings_from_env({"AUTH_DEMO_PASSWORD": "pw", "AUTH_JWT_SECRET": "k" * 32}, hasher=FAST)
    assert s.users["alice"].startswith("$argon2id$")
    assert check_password(FAST, s.users["alice"], "pw") and not check_password(FAST, s.users["alice"], "PW")
    assert not check_password(FAST, "not a hash", "pw")


# -- the event loop stays free while argon2 runs --------------------------------------------------------
def test_other_requests_are_answered_while_a_login_is_hashing() -> None:
    hasher = GatedHasher()
    with serve(make_config(settings(hasher))) as server:
        slow = server.connect()
        slow.send(login_request())
        assert hasher.entered.wait(5), "the login never started hashing"
        # A hash is in progress right now, in a pool thread. Another connection is served:
        other = server.request(get(b"/healthz"))
        assert (other.status, other.body) == (200, b"ok\n")
        assert server.request(get(b"/api/report", b"X-API-Key: " + API_KEY.encode())).status == 200
        assert select.select([slow.sock], [], [], 0)[0] == []  # ...and the login is still waiting
        hasher.gate.set()
        r = slow.read_response(b"POST")
        assert r.status == 200 and json.loads(r.body)["access_token"]


def test_many_concurrent_logins_complete() -> None:
    with serve(make_config(settings())) as server:
        clients = [server.connect() for _ in range(8)]
        for i, client in enumerate(clients):
            client.send(login_request(password="wonderland" if i % 2 == 0 else "nope"))
        statuses = [client.read_response(b"POST").status for client in clients]
    assert statuses == [200, 401] * 4


def test_logins_beyond_the_queue_bound_are_shed_with_503() -> None:
    hasher = GatedHasher()
    with serve(make_config(settings(hasher, threads=1, max_queued=1))) as server:
        held = [server.connect(), server.connect()]
        for client in held:
            client.send(login_request())
        assert hasher.entered.wait(5)  # one login hashing in the only thread...
        assert server.worker is not None
        state: AuthState = server.worker.state
        deadline = time.monotonic() + 5
        while state.offloader is None or state.offloader.in_flight < 2:  # ...and one queued behind it
            assert time.monotonic() < deadline, "the second login was never queued"
            time.sleep(0.01)
        r = server.request(login_request())
        assert r.status == 503 and r.header("retry-after") == b"1" and r.body.startswith(b"busy, retry shortly")
        hasher.gate.set()
        assert [c.read_response(b"POST").status for c in held] == [200, 200]


def test_a_client_leaving_during_the_hash_leaks_nothing() -> None:
    hasher = GatedHasher()
    with serve(make_config(settings(hasher))) as server:
        client = server.connect()
        client.send(login_request())
        assert hasher.entered.wait(5)
        client.close()  # the parked login is closed; the late wake-up finds nobody
        time.sleep(0.05)
        hasher.gate.set()
        assert server.request(get(b"/healthz")).status == 200
    # serve() asserted on exit that no task, timer or fd was left behind


# -- tokens -------------------------------------------------------------------------------------------------
def test_an_expired_token_is_401() -> None:
    expired = Tokens(SECRET, ttl=60).issue("alice", now=time.time() - 120)
    with serve(make_config(settings())) as server:
        r = server.request(get(b"/me", bearer(expired)))
    assert_401(r, b'Bearer realm="examples.auth", error="invalid_token", '
                  b'error_description="the token has expired; log in again"')


def _flip(part: str) -> str:
    return ("A" if part[0] != "A" else "B") + part[1:]


def test_tampered_and_forged_tokens_are_401() -> None:
    with serve(make_config(settings())) as server:
        token = log_in(server)
        header, payload, signature = token.split(".")
        claims = json.loads(jwt.utils.base64url_decode(payload))
        claims["sub"] = "admin"
        forged_payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
        bad = [
            f"{header}.{forged_payload}.{signature}",  # payload changed, signature kept
            f"{header}.{payload}.{_flip(signature)}",  # signature changed
            jwt.encode(claims, b"x" * 32, algorithm="HS256"),  # signed with another secret
            jwt.encode({**claims, "iss": "someone-else"}, SECRET, algorithm="HS256"),
            jwt.encode({"sub": "alice", "iss": "examples.auth", "iat": int(time.time())}, SECRET,
                       algorithm="HS256"),  # no exp
            NONE_HEADER + "." + payload + ".",  # alg: none
            "garbage",
        ]
        for token_text in bad:
            r = server.request(get(b"/me", bearer(token_text)))
            assert r.status == 401, token_text
            assert (r.header("www-authenticate") or b"").startswith(b'Bearer realm="examples.auth", error="invalid_token"')
        for headers in [(), (b"Authorization: Basic YWxpY2U6d29uZGVybGFuZA==",), (b"Authorization: Bearer ",)]:
            assert_401(server.request(get(b"/me", *headers)), b'Bearer realm="examples.auth"')


# -- API keys -----------------------------------------------------------------------------------------------
def test_api_keys() -> None:
    with serve(make_config(settings())) as server:
        ok = server.request(get(b"/api/report", b"X-API-Key: " + API_KEY.encode()))
        assert ok.status == 200 and json.loads(ok.body)["owner"] == "ops-team"
        for key in [b"ops.0123456789abcdef-secreT", b"ops.", b"nobody.0123456789abcdef-secret", b"ops", b"."]:
            assert_401(server.request(get(b"/api/report", b"X-API-Key: " + key)), b'ApiKey realm="examples.auth"')
        assert_401(server.request(get(b"/api/report")), b'ApiKey realm="examples.auth"')


@pytest.mark.parametrize("make, message", [
    (lambda: Tokens(b"short"), "at least 32 bytes"),
    (lambda: Tokens(SECRET, ttl=0), "ttl must be >= 1"),
    (lambda: ApiKeys({"nodot": "x"}), "must be '<id>.<secret>'"),
    (lambda: ApiKeys({"id.short": "x"}), "at least 16 characters"),
])
def test_bad_credential_settings_say_what_is_wrong(make: Any, message: str) -> None:
    with pytest.raises(AuthConfigError, match=message):
        make()


def test_token_verification_directly() -> None:
    tokens = Tokens(SECRET, ttl=5)
    assert tokens.verify(tokens.issue("bob"))["sub"] == "bob"
    with pytest.raises(InvalidToken, match="expired"):
        tokens.verify(tokens.issue("bob", now=time.time() - 10))


def test_runs_as_a_module() -> None:
    env = {"AUTH_DEMO_PASSWORD": "pw-from-env", "AUTH_JWT_SECRET": "e" * 32}
    with ServerProcess("-m", "examples.auth", "--port", "0", "--workers", "2", cwd=ROOT, env=env) as proc:
        port = proc.port()
        with Client(("127.0.0.1", port)) as client:
            client.send(login_request(password="pw-from-env"))
            token = json.loads(client.read_response(b"POST").body)["access_token"]
        for _ in range(4):  # whichever worker answers, the shared secret verifies it
            with Client(("127.0.0.1", port)) as client:
                client.send(get(b"/me", bearer(token)))
                assert client.read_response().status == 200
        assert proc.stop(signal.SIGTERM) == 0
