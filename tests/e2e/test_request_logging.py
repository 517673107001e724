"""Request logging end to end, on SQLite and PostgreSQL, through a real server with the built-in
development model: off by default (nothing of a prompt is stored anywhere); turned on for one
organization by the operator CLI, its requests' bodies come back exactly as sent and received
(streamed and not), encrypted at rest, for that organization only; bodies over the cap are cut
with a marker; turning it off takes effect within the key cache's 2 s; the organization's
members see it on the dashboard API and in the audit trail."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from faregate.identity.users import User
from tests import services
from tests.cli._support import Cli
from tests.e2e.api_client import ApiClient
from tests.harness import Deployment, Proc, deployment

pytestmark = pytest.mark.timeout(300)

CAP = 4096  # FAREGATE_REQUEST_LOG_MAX_BYTES of the server under test
ONE_DOLLAR = 1_000_000_000
_emails = itertools.count(1)


@dataclass
class Site:
    dep: Deployment
    server: Proc
    cli: Cli

    def user(self) -> tuple[User, str]:
        user = self.dep.new_user(f"log{next(_emails)}-{uuid.uuid4().hex[:6]}@example.com",
                                 ONE_DOLLAR)
        return user, self.dep.new_key(user)[1]

    def http(self) -> httpx2.Client:
        return httpx2.Client(base_url=self.server.base_url, timeout=30.0)

    def post(self, key: str, path: str, body: dict[str, Any]) -> tuple[httpx2.Response, bytes]:
        """POST exactly these bytes (json.dumps of `body`); the response and its raw body."""
        content = json.dumps(body).encode()
        with self.http() as http, http.stream(
                "POST", path, content=content,
                headers={"Authorization": f"Bearer {key}",
                         "Content-Type": "application/json"}) as resp:
            raw = resp.read()
        assert resp.status_code == 200, raw
        return resp, raw

    def get_log(self, key: str, rid: str) -> httpx2.Response:
        with self.http() as http:
            return http.get(f"/v1/faregate/requests/{rid}/log",
                            headers={"Authorization": f"Bearer {key}"})

    def wait_log(self, key: str, rid: str) -> dict[str, Any]:
        """The log of `rid` once the background writer has written it."""
        deadline = time.monotonic() + 20
        while True:
            r = self.get_log(key, rid)
            if r.status_code == 200:
                return dict(r.json())
            assert r.status_code == 404, r.text
            assert time.monotonic() < deadline, f"no log of {rid} was written"
            time.sleep(0.05)

    def logged_orgs(self) -> set[str]:
        return {str(r[0]) for r in self.dep.query("SELECT organization_id FROM request_logs")}

    def logging_on(self, user: User, days: int = 2) -> dict[str, Any]:
        out: dict[str, Any] = self.cli.json("orgs", "request-log", user.email, "--on",
                                            "--days", str(days))
        return out

    def stored_bytes(self) -> bytes:
        """Every byte of the SQLite database (with its WAL), or on PostgreSQL every stored
        request log column, as text."""
        if self.dep.database_url.startswith("sqlite"):
            db = Path(self.dep.database_url.removeprefix("sqlite:///"))
            return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())
        rows = self.dep.query("SELECT * FROM request_logs")
        return b"".join(repr(tuple(r)).encode() for r in rows)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Site]:
    data_dir: Path = tmp_path_factory.mktemp(f"reqlog-{request.param}") / "fg"
    env = {"FAREGATE_REQUEST_LOG_MAX_BYTES": str(CAP)}
    if request.param == "sqlite":
        with deployment(data_dir) as dep:
            yield Site(dep, dep.start_server(**env), Cli(dep.data_dir, dep.database_url))
        return
    admin_url = services.check_pg_admin_url()
    with services.database_factory(admin_url) as make, deployment(data_dir, make()) as dep:
        yield Site(dep, dep.start_server(**env), Cli(dep.data_dir, dep.database_url))


def _chat(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "faregate-dev", "messages": [{"role": "user", "content": prompt}], **extra}


def _streamed_text(sse: str) -> str:
    """The text a chat stream delivered, assembled from its deltas."""
    return "".join((choice["delta"].get("content") or "")
                   for event in sse.split("\n\n") if event.startswith("data: {")
                   for choice in json.loads(event[6:])["choices"])


def test_off_by_default_nothing_is_stored(site: Site) -> None:
    _, key = site.user()
    secret = f"zebra-quartz-{uuid.uuid4().hex}"
    once, _ = site.post(key, "/v1/chat/completions", _chat(secret))
    streamed, _ = site.post(key, "/v1/chat/completions", _chat(secret + " again", stream=True))
    for resp in (once, streamed):
        assert "x-faregate-request-logged" not in resp.headers
    # A request of a logged organization, written after them by the same FIFO writer: once it
    # is visible, anything queued before it would be too.
    other, _ = site.user()
    site.logging_on(other)
    _, barrier_key = site.dep.new_key(other)
    barrier, _ = site.post(barrier_key, "/v1/chat/completions", _chat("barrier"))
    site.wait_log(barrier_key, barrier.headers["x-request-id"])
    ids = {str(r[0]) for r in site.dep.query("SELECT request_id FROM request_logs")}
    assert barrier.headers["x-request-id"] in ids
    assert once.headers["x-request-id"] not in ids
    assert streamed.headers["x-request-id"] not in ids
    assert site.get_log(key, once.headers["x-request-id"]).status_code == 404
    stored = site.stored_bytes()
    assert barrier.headers["x-request-id"].encode() in stored  # the search sees the data
    assert secret.encode() not in stored


def test_an_organizations_requests_round_trip_encrypted(site: Site) -> None:
    logged, _ = site.user()
    quiet, quiet_key = site.user()
    shown = site.logging_on(logged)
    assert shown["enabled"] is True and shown["until"] is not None
    _, key = site.dep.new_key(logged)  # a key made after the change: no cached "off"
    p1, p2, p3 = (f"{w}-{uuid.uuid4().hex}" for w in ("okapi", "narwhal", "quokka"))

    body1 = _chat(p1, max_tokens=12)
    once, once_raw = site.post(key, "/v1/chat/completions", body1)
    body2 = _chat(p2, max_tokens=5, stream=True, stream_options={"include_usage": True})
    streamed, streamed_raw = site.post(key, "/v1/chat/completions", body2)
    other, _ = site.post(quiet_key, "/v1/chat/completions", _chat(p3))
    assert once.headers["x-faregate-request-logged"] == "true"
    assert streamed.headers["x-faregate-request-logged"] == "true"
    assert "x-faregate-request-logged" not in other.headers

    log1 = site.wait_log(key, once.headers["x-request-id"])
    assert log1["request_body"] == json.dumps(body1)  # exactly what the client sent
    assert log1["response_body"] == once_raw.decode()  # exactly what it received
    assert (log1["endpoint"], log1["model"], log1["status_code"]) == ("chat", "faregate-dev", 200)
    assert log1["truncated"] is False
    assert log1["request_bytes"] == len(json.dumps(body1).encode())
    assert log1["response_bytes"] == len(once_raw)
    log2 = site.wait_log(key, streamed.headers["x-request-id"])
    assert log2["request_body"] == json.dumps(body2)
    assert log2["response_body"] == streamed_raw.decode()  # the SSE bytes as they went out
    assert log2["response_body"].endswith("data: [DONE]\n\n")
    assert len(_streamed_text(log2["response_body"]).split()) == 5  # max_tokens pieces
    assert key not in log1["request_body"] + log2["request_body"]  # never a header

    # Only the logged organization's requests; nobody else reads them.
    assert logged.organization_id in site.logged_orgs()
    assert quiet.organization_id not in site.logged_orgs()
    assert site.get_log(quiet_key, other.headers["x-request-id"]).status_code == 404
    assert site.get_log(quiet_key, once.headers["x-request-id"]).status_code == 404
    # The usage record is unchanged by it.
    with site.http() as http:
        record = http.get(f"/v1/faregate/requests/{once.headers['x-request-id']}",
                          headers={"Authorization": f"Bearer {key}"}).json()
    assert record["status"] == "ok" and record["object"] == "faregate.request"

    # Encrypted at rest: no prompt in the stored bytes (the whole file, on SQLite).
    stored = site.stored_bytes()
    for prompt in (p1, p2, p3):
        assert prompt.encode() not in stored
    sealed = site.dep.query("SELECT request_sealed, response_sealed FROM request_logs "
                            "WHERE request_id = :r", r=once.headers["x-request-id"])
    assert len(sealed) == 1
    assert all(p1.encode() not in bytes(blob) for blob in sealed[0])

    # The operator reads it too, with the organization it belongs to.
    shown_cli = site.cli.json("requests", "show", once.headers["x-request-id"], "--log")
    assert shown_cli["record"]["organization_id"] == logged.organization_id
    assert shown_cli["log"]["request_body"] == json.dumps(body1)
    assert shown_cli["log"]["organization_id"] == logged.organization_id
    text = site.cli("requests", "show", streamed.headers["x-request-id"], "--log").stdout
    assert "--- request body ---" in text and p2 in text
    assert site.cli("requests", "show", "req_nope", "--log", expect=1).stderr.startswith("error:")


def test_bodies_over_the_cap_are_cut_with_a_marker(site: Site) -> None:
    user, _ = site.user()
    site.logging_on(user)
    _, key = site.dep.new_key(user)
    big = _chat("lorem " * 2000, max_tokens=40, n=4, stream=True)
    sent = json.dumps(big).encode()
    resp, raw = site.post(key, "/v1/chat/completions", big)
    assert len(sent) > CAP and len(raw) > CAP
    log = site.wait_log(key, resp.headers["x-request-id"])
    assert log["truncated"] is True
    assert (log["request_bytes"], log["response_bytes"]) == (len(sent), len(raw))
    assert log["request_body"] == (sent[:CAP].decode()
                                   + f"\n[truncated by Faregate: {CAP} of {len(sent)} bytes kept]")
    assert log["response_body"] == (raw[:CAP].decode()
                                    + f"\n[truncated by Faregate: {CAP} of {len(raw)} bytes kept]")


def test_turning_it_off_stops_logging_within_two_seconds(site: Site) -> None:
    user, _ = site.user()
    site.logging_on(user)
    _, key = site.dep.new_key(user)
    before, _ = site.post(key, "/v1/chat/completions", _chat("before"))
    assert before.headers["x-faregate-request-logged"] == "true"  # cached as "on" now
    off = site.cli.json("orgs", "request-log", user.email, "--off")
    turned_off = time.monotonic()
    assert off["enabled"] is False and off["until"] is None
    time.sleep(max(0.0, turned_off + 2.05 - time.monotonic()))  # the key cache's bound
    after, _ = site.post(key, "/v1/chat/completions", _chat("after"))
    assert "x-faregate-request-logged" not in after.headers
    site.wait_log(key, before.headers["x-request-id"])  # the writer got this far
    ids = {str(r[0]) for r in site.dep.query("SELECT request_id FROM request_logs")}
    assert after.headers["x-request-id"] not in ids
    # Logs already written stay readable until the retention deletes them.
    assert site.get_log(key, before.headers["x-request-id"]).status_code == 200


def test_members_see_that_their_requests_are_logged(site: Site) -> None:
    web = ApiClient(site.server.base_url)
    email = f"banner{next(_emails)}-{uuid.uuid4().hex[:6]}@example.com"
    org = web.signup(email, "correct horse battery staple")["user"]["personal_organization_id"]
    shown = web.get(f"/api/orgs/{org}").json()["request_logging"]
    assert shown == {"enabled": False, "until": None, "retention_days": 7}

    on = site.cli.json("orgs", "request-log", org, "--on", "--days", "3")
    shown = web.get(f"/api/orgs/{org}").json()["request_logging"]
    assert shown["enabled"] is True and shown["until"] is not None
    assert shown["until"].replace("+00:00", "Z") == on["until"]
    events = web.get(f"/api/orgs/{org}/audit").json()["data"]
    assert events[0]["action"] == "request_logging.enabled"

    site.cli.json("orgs", "request-log", org, "--off")
    shown = web.get(f"/api/orgs/{org}").json()["request_logging"]
    assert shown == {"enabled": False, "until": None, "retention_days": 7}
    assert web.get(f"/api/orgs/{org}/audit").json()["data"][0]["action"] == \
        "request_logging.disabled"
    web.close()


def test_the_operator_cli_refuses_bad_input(site: Site) -> None:
    user, _ = site.user()
    assert site.cli("orgs", "request-log", user.email, "--on", "--off", expect=2)
    assert site.cli("orgs", "request-log", user.email, "--on", "--days", "91", expect=2)
    assert site.cli("orgs", "request-log", "org_nope", "--on", expect=1)
    status = site.cli.json("orgs", "request-log", user.organization_id)
    assert status == {"organization_id": user.organization_id, "enabled": False,
                      "until": None, "all_requests": False, "retention_days": 7}


def test_the_whole_deployment_can_log_every_request(tmp_path: Path) -> None:
    with deployment(tmp_path / "fg") as dep:
        server = dep.start_server(FAREGATE_REQUEST_LOG="all")
        site = Site(dep, server, Cli(dep.data_dir, dep.database_url))
        _, key = site.user()
        resp, raw = site.post(key, "/v1/embeddings", {"model": "faregate-dev-embed",
                                                      "input": ["every", "request"]})
        assert resp.headers["x-faregate-request-logged"] == "true"
        log = site.wait_log(key, resp.headers["x-request-id"])
        assert (log["endpoint"], log["response_body"]) == ("embeddings", raw.decode())
        web = ApiClient(server.base_url)
        org = web.signup(f"all{next(_emails)}@example.com",
                         "correct horse battery staple")["user"]["personal_organization_id"]
        assert web.get(f"/api/orgs/{org}").json()["request_logging"] == {
            "enabled": True, "until": None, "retention_days": 7}
        web.close()
