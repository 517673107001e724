"""Project budgets end to end, against real server processes:

- two server processes on one database (SQLite and PostgreSQL) take 50 concurrent requests
  against a project budget of 20 requests' cost: exactly 20 are charged, the other 30 get 429
  `insufficient_quota` / `project_spend_limit_exceeded` with `x-should-retry: false`, and the
  ledger verifies;
- with FAREGATE_EMAIL_SENDER=smtp and a real SMTP server on loopback (aiosmtpd), an owner sets
  a budget and a low-balance amount through the API; calls cross 50 %, 80 % and 100 % of the
  budget and the owner gets each threshold's email exactly once, then the 429; the
  low-balance email comes once, and again only after a grant brought the balance back over
  and it fell again;
- the API: set, read (spent, held, remaining) and clear a budget; invalid amounts and
  thresholds are refused with a readable 400; a member gets 403 `owner_required`.

Each request here costs exactly 1 nano-USD and reserves exactly that (the model is priced at
1,000 nano-USD per 1M tokens, so any body under 1,000 bytes rounds up to 1 both ways), which
makes "exactly at the budget" checkable to the unit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from email import message_from_bytes
from email.message import Message
from typing import Any

import aiohttp
import orjson

from faregate.api_keys.service import KeySpec
from faregate.catalog.service import ModelPrice
from faregate.identity.projects import Project, get_default_project, update_project
from faregate.identity.users import User
from faregate.ledger.transfers import grant
from faregate.tiers.service import set_override
from tests.e2e.api_client import ApiClient, invited_member, verified_owner
from tests.harness import Deployment

PRICE = ModelPrice(1_000, 1_000, 0)  # 1 nano-USD per request (bodies under 1,000 bytes)
MODEL = "embed-exact"
PASSWORD = "a long enough passphrase 5"


def _exact_model(dep: Deployment) -> None:
    upstream = dep.start_devmodel()
    dep.add_upstream("exact", f"{upstream.base_url}/v1", {MODEL: "faregate-dev-embed"}, PRICE,
                     kind="embedding")


async def _embed(session: aiohttp.ClientSession, base: str, key: str, n: int
                 ) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = {"model": MODEL, "input": f"request number {n}"}
    async with session.post(f"{base}/v1/embeddings", data=orjson.dumps(body),
                            headers={"Authorization": f"Bearer {key}",
                                     "Content-Type": "application/json"}) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


def _embed_once(base: str, key: str, n: int) -> tuple[int, dict[str, Any], dict[str, str]]:
    async def run() -> tuple[int, dict[str, Any], dict[str, str]]:
        async with aiohttp.ClientSession() as session:
            return await _embed(session, base, key, n)
    return asyncio.run(run())


def _budgeted_user(dep: Deployment, email: str, budget_nano: int) -> tuple[User, Project]:
    """A user with 1,000,000 nano-USD whose default project has this monthly budget."""
    user = dep.new_user(email, grant_nano=1_000_000)
    with dep.engine.begin() as conn:
        project = get_default_project(conn, user.organization_id)
        update_project(conn, user.organization_id, project.id, user_id=user.id,
                       monthly_budget_nano=budget_nano)
    return user, project


def _charged(dep: Deployment, project_id: str) -> tuple[int, int]:
    """(usage records, nano-USD charged) of a project."""
    count, charged = tuple(dep.query(
        "SELECT COUNT(*), COALESCE(SUM(charged_nano), 0) FROM usage_records "
        "WHERE project_id = :p", p=project_id)[0])
    return int(str(count)), int(str(charged))


# --- the hard stop over two processes ----------------------------------------------------------


def test_fifty_concurrent_requests_over_two_servers_stop_exactly_at_the_budget(
        any_dep: Deployment) -> None:
    dep = any_dep
    _exact_model(dep)
    user, project = _budgeted_user(dep, "budget@example.com", 20)
    _, key = dep.new_key(user)
    bases = [dep.start_server(FAREGATE_DEV_MODEL="false").base_url for _ in range(2)]

    async def burst() -> list[tuple[int, dict[str, Any], dict[str, str]]]:
        async with aiohttp.ClientSession() as session:
            return await asyncio.gather(*(_embed(session, bases[i % 2], key, i)
                                          for i in range(50)))

    results = asyncio.run(burst())
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] != 200]
    assert len(ok) == 20, [r[:2] for r in refused][:3]
    assert all(r[2]["x-faregate-charged-nano-usd"] == "1" for r in ok)
    assert len(refused) == 30
    for status, body, headers in refused:
        assert status == 429
        assert body["error"]["type"] == "insufficient_quota"
        assert body["error"]["code"] == "project_spend_limit_exceeded"
        assert headers["x-should-retry"] == "false"
        assert "monthly budget of $0.00000002" in body["error"]["message"]
    assert _charged(dep, project.id) == (20, 20)
    dep.stop_all_servers()
    assert dep.balance(user) == (1_000_000 - 20, 0, 0)
    assert dep.verify() == []


def test_key_limit_and_project_budget_each_refuse_with_their_own_code(
        sqlite_dep: Deployment) -> None:
    """A key's spend limit and its project's budget are reserved in one step; whichever runs
    out first is the one the refusal names."""
    dep = sqlite_dep
    _exact_model(dep)
    user, project = _budgeted_user(dep, "both@example.com", 8)
    _, limited = dep.new_key(user, KeySpec(name="limited", spend_limit_nano=5,
                                           spend_limit_period="day"))
    _, free = dep.new_key(user, KeySpec(name="free"))
    base = dep.start_server(FAREGATE_DEV_MODEL="false").base_url
    codes = [_embed_once(base, limited, n)[1].get("error", {}).get("code") for n in range(6)]
    assert codes == [None] * 5 + ["api_key_spend_limit_exceeded"]
    codes = [_embed_once(base, free, n)[1].get("error", {}).get("code") for n in range(4)]
    assert codes == [None] * 3 + ["project_spend_limit_exceeded"]
    assert _charged(dep, project.id) == (8, 8)
    dep.stop_all_servers()
    assert dep.verify() == []


# --- alert emails by SMTP ----------------------------------------------------------------------


def _text(msg: Message) -> str:
    parts = msg.walk() if msg.is_multipart() else [msg]
    return "".join(bytes(p.get_payload(decode=True)).decode() for p in parts
                   if p.get_content_type() == "text/plain")


class Mailbox:
    def __init__(self, handler: Any) -> None:
        self.handler = handler

    def messages(self, subject_part: str = "") -> list[Message]:
        found = [message_from_bytes(e.original_content) for e in self.handler.envelopes]
        return [m for m in found if subject_part in str(m["Subject"])]

    def wait_for(self, subject_part: str, count: int, timeout_s: float = 20) -> list[Message]:
        deadline = time.monotonic() + timeout_s
        while len(self.messages(subject_part)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        found = self.messages(subject_part)
        assert len(found) >= count, [str(m["Subject"]) for m in self.messages()]
        return found


def _wait_until(check: Callable[[], bool], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_budget_and_low_balance_emails_by_smtp(sqlite_dep: Deployment,
                                               smtp_server: Any) -> None:
    dep = sqlite_dep
    controller, handler = smtp_server
    mail = Mailbox(handler)
    _exact_model(dep)
    base = dep.start_server(
        FAREGATE_DEV_MODEL="false", FAREGATE_EMAIL_SENDER="smtp",
        FAREGATE_SMTP_HOST="127.0.0.1", FAREGATE_SMTP_PORT=str(controller.port),
        FAREGATE_SMTP_STARTTLS="false", FAREGATE_EMAIL_FROM="Faregate <alerts@example.com>",
        FAREGATE_PUBLIC_URL="https://gate.example.com").base_url
    web = ApiClient(base)
    web.signup("owner@example.com", PASSWORD)
    me = web.get("/api/me").json()
    org = me["personal_organization_id"]
    user = User(me["id"], me["email"], org)
    with dep.engine.begin() as conn:
        grant(conn, org, 100, actor="test", reason="test")
        set_override(conn, org, 100)  # Unlimited: these many calls are not about RPM
    _, key = dep.new_key(user)
    project = web.get(f"/api/orgs/{org}/projects").json()["data"][0]["id"]
    r = web.patch(f"/api/orgs/{org}/projects/{project}",
                  {"monthly_budget_usd": "0.00000001"})  # 10 requests
    assert r.status_code == 200, r.text
    assert r.json()["budget_alert_pcts"] == [50, 80, 100]
    r = web.put(f"/api/orgs/{org}/billing/alerts", {"low_balance_usd": "0.000000093"})
    assert r.status_code == 200, r.text
    assert r.json() == {"low_balance": {"usd": "0.000000093", "nano_usd": 93}}

    def call(n: int) -> None:
        status, body, _ = _embed_once(base, key, n)
        assert status == 200, body

    for n in range(1, 6):
        call(n)
    [half] = mail.wait_for("used 50% of its monthly budget", 1)
    assert half["To"] == "owner@example.com"
    assert "has spent $0.000000005 of its $0.00000001 monthly budget" in _text(half)
    for n in range(6, 9):  # spent 8 (80 %); balance 92, under 93
        call(n)
    [eighty] = mail.wait_for("used 80% of its monthly budget", 1)
    assert "has spent $0.000000008" in _text(eighty)
    [low] = mail.wait_for("balance low", 1)
    assert low["Subject"] == "Faregate balance low: $0.000000092 left"
    assert "https://gate.example.com/settings/billing" in _text(low)
    call(9)
    call(10)
    [full] = mail.wait_for("reached its monthly budget", 1)
    assert f"https://gate.example.com/settings/projects/{project}" in _text(full)
    status, body, headers = _embed_once(base, key, 11)
    assert status == 429 and body["error"]["code"] == "project_spend_limit_exceeded"
    assert body["error"]["type"] == "insufficient_quota"
    assert headers["x-should-retry"] == "false"

    # A grant brings the balance back over the amount: the alert is re-armed ...
    with dep.engine.begin() as conn:
        grant(conn, org, 10, actor="test", reason="test")  # 100
    _wait_until(lambda: dep.query(
        "SELECT low_balance_alerted_at FROM billing_states WHERE organization_id = :o",
        o=org)[0][0] is None)
    # ... and the next fall under it emails again. The budget is raised to let calls through.
    r = web.patch(f"/api/orgs/{org}/projects/{project}", {"monthly_budget_usd": "0.0000001"})
    assert r.status_code == 200, r.text
    budget = r.json()["budget"]
    assert budget["spent"]["nano_usd"] == 10 and budget["remaining"]["nano_usd"] == 90
    # The raised budget applies within the core's 2-second bound (keys are cached).
    deadline = time.monotonic() + 10
    while _embed_once(base, key, 12)[0] != 200:
        assert time.monotonic() < deadline, "the raised budget did not apply"
        time.sleep(0.2)
    for n in range(13, 20):  # balance 92
        call(n)
    mail.wait_for("balance low", 2)
    time.sleep(3 * 2.0)  # a few more rounds of the alert jobs: nothing else may arrive
    alerts = sorted(str(m["Subject"]) for m in mail.messages()
                    if "budget" in str(m["Subject"]) or "balance low" in str(m["Subject"]))
    assert alerts == sorted([
        "Faregate: project Default project used 50% of its monthly budget",
        "Faregate: project Default project used 80% of its monthly budget",
        "Faregate: project Default project reached its monthly budget",
        "Faregate balance low: $0.000000092 left",
        "Faregate balance low: $0.000000092 left",
    ])
    assert {str(m["To"]) for m in mail.messages("Faregate")} == {"owner@example.com"}
    assert dep.verify() == []


# --- the API -----------------------------------------------------------------------------------


def _error(r: Any) -> dict[str, Any]:
    body: dict[str, Any] = r.json()["error"]
    return body


def test_budget_api(sqlite_dep: Deployment) -> None:
    dep = sqlite_dep
    base = dep.start_server().base_url
    owner, org = verified_owner(dep, base, phone=False)
    project = owner.post(f"/api/orgs/{org}/projects", {"name": "research"}).json()
    assert project["budget"] is None and project["budget_alert_pcts"] == [50, 80, 100]
    path = f"/api/orgs/{org}/projects/{project['id']}"

    r = owner.patch(path, {"monthly_budget_usd": "25.50", "budget_alert_pcts": [90, 10]})
    assert r.status_code == 200, r.text
    got = owner.get(path).json()
    assert got["budget_alert_pcts"] == [10, 90]
    budget = got["budget"]
    assert budget["monthly_budget"] == {"nano_usd": 25_500_000_000, "usd": "25.5"}
    assert budget["spent"]["nano_usd"] == 0 and budget["held"]["nano_usd"] == 0
    assert budget["remaining"]["nano_usd"] == 25_500_000_000
    assert budget["resets_at"] > budget["period_start"]
    listed = {p["id"]: p for p in owner.get(f"/api/orgs/{org}/projects").json()["data"]}
    assert listed[project["id"]]["budget"]["monthly_budget"]["usd"] == "25.5"
    assert owner.patch(path, {"monthly_budget_usd": 7.25}).json()["budget"][
        "monthly_budget"]["usd"] == "7.25"
    assert owner.patch(path, {"name": "renamed"}).json()["budget"]["monthly_budget"][
        "usd"] == "7.25"  # a field left out is left alone

    for body, param in [({"monthly_budget_usd": "-5"}, "monthly_budget_usd"),
                        ({"monthly_budget_usd": "0"}, "monthly_budget_usd"),
                        ({"monthly_budget_usd": "ten"}, "monthly_budget_usd"),
                        ({"budget_alert_pcts": list(range(1, 12))}, "budget_alert_pcts"),
                        ({"budget_alert_pcts": [50, 120]}, "budget_alert_pcts")]:
        r = owner.patch(path, body)
        assert r.status_code == 400, (body, r.text)
        assert _error(r)["param"] == param and _error(r)["message"], r.text
    r = owner.put(f"/api/orgs/{org}/billing/alerts", {"low_balance_usd": "-1"})
    assert r.status_code == 400 and _error(r)["param"] == "low_balance_usd"

    cleared = owner.patch(path, {"monthly_budget_usd": None, "budget_alert_pcts": None}).json()
    assert cleared["budget"] is None and cleared["budget_alert_pcts"] == [50, 80, 100]
    assert owner.patch(path, {"budget_alert_pcts": []}).json()["budget_alert_pcts"] == []

    audit = owner.get(f"/api/orgs/{org}/audit").json()["data"]
    changes = [e for e in audit if e["action"] == "project.budget_changed"]
    assert len(changes) == 4
    assert {"before", "after"} <= set(changes[-1]["detail"])

    # A member can read the budget but not change it.
    member = invited_member(dep, owner, org, phone=False)
    assert member.get(path).status_code == 200
    for method, target, body in [
            ("PATCH", path, {"monthly_budget_usd": "1000"}),
            ("PATCH", path, {"monthly_budget_usd": None}),
            ("PUT", f"/api/orgs/{org}/billing/alerts", {"low_balance_usd": "5"})]:
        r = member.request(method, target, body)
        assert r.status_code == 403 and _error(r)["code"] == "owner_required", r.text
    assert owner.get(path).json()["budget"] is None
    assert owner.get(f"/api/orgs/{org}/billing").json()["low_balance_alert"] is None
    r = owner.put(f"/api/orgs/{org}/billing/alerts", {"low_balance_usd": "5"})
    assert r.json()["low_balance"]["usd"] == "5"
    assert owner.get(f"/api/orgs/{org}/billing").json()["low_balance_alert"]["usd"] == "5"
    assert owner.put(f"/api/orgs/{org}/billing/alerts",
                     {"low_balance_usd": None}).json() == {"low_balance": None}
