"""The model catalog end to end, against a running server: an operator adds models and prices
in the console API, and /v1 follows — the minimum tier (a tier-0 organization sees a model of
tier 1 as one that does not exist, until its tier rises), aliases, hidden models, the context
window, a price change that leaves a running request at the price it started with, and price
groups that change the charge exactly. Every operator action is in the audit trail with actor,
target and before/after."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pytest

from faregate.catalog.service import BUILTIN_BASE_URL, ModelPrice, add_upstream
from faregate.db.schema import organizations
from faregate.ledger.transfers import grant
from tests.e2e.api_client import verified_owner
from tests.e2e.fixtures_gateway import ONE_DOLLAR, price_rule, sse_data
from tests.e2e.operator_client import OperatorClient, create_operator
from tests.harness import Deployment, Proc, deployment

T = TypeVar("T")
MESSAGES = [{"role": "user", "content": "Tell me about gates and fares."}]
TOKEN_LATENCY_MS = 800  # the slow upstream: a streamed answer of 8+ pieces takes 6+ s


@dataclass
class Env:
    dep: Deployment
    server: Proc
    slow: Proc
    admin: OperatorClient
    actor: str
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (org, key)

    @property
    def base(self) -> str:
        return self.server.base_url

    def key(self, name: str = "unlimited") -> str:
        """An API key of a new organization made as the operator CLI makes one (unlimited
        tier), with $1 of credit."""
        if name not in self.keys:
            user = self.dep.new_user(f"{name}@example.com", ONE_DOLLAR)
            self.keys[name] = (user.organization_id, self.dep.new_key(user)[1])
        return self.keys[name][1]

    def org_of(self, name: str) -> str:
        self.key(name)
        return self.keys[name][0]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    data_dir: Path = tmp_path_factory.mktemp("catalog")
    with deployment(data_dir / "fg") as dep:
        slow = dep.start_devmodel(token_latency_ms=TOKEN_LATENCY_MS)
        server = dep.start_server()
        op = create_operator(dep, "root@example.com", "admin")
        admin = OperatorClient(server.base_url).signed_in(op)
        yield Env(dep, server, slow, admin, f"operator:{op.id}")


def eventually(check: Callable[[], T | None], timeout_s: float = 15.0) -> T:
    """Poll `check` until it returns something other than None (a bounded wait)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got is not None:
            return got
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def chat(env: Env, key: str, model: str, **body: Any) -> httpx2.Response:
    with httpx2.Client(base_url=env.base, timeout=60.0) as http:
        return http.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES,
                                                       **body},
                         headers={"Authorization": f"Bearer {key}"})


def listed(env: Env, key: str) -> set[str]:
    with httpx2.Client(base_url=env.base, timeout=30.0) as http:
        r = http.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return {m["id"] for m in r.json()["data"]}


def get_model(env: Env, key: str, model: str) -> httpx2.Response:
    with httpx2.Client(base_url=env.base, timeout=30.0) as http:
        return http.get(f"/v1/models/{model}", headers={"Authorization": f"Bearer {key}"})


def record(env: Env, key: str, request_id: str) -> dict[str, Any]:
    with httpx2.Client(base_url=env.base, timeout=30.0) as http:
        r = http.get(f"/v1/faregate/requests/{request_id}",
                     headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


def charged_at(rec: dict[str, Any], price: ModelPrice) -> bool:
    return bool(rec["cost_nano_usd"] == rec["charged_nano_usd"] == price_rule(
        price, rec["prompt_tokens"], rec["cached_tokens"], rec["completion_tokens"]))


def audited(env: Env, action: str, target: str) -> dict[str, Any]:
    """The newest audit event of `action` on `target`: by this test's operator, with
    before/after."""
    rows = env.dep.query(
        "SELECT actor, detail FROM audit_events WHERE action = :a AND target = :t "
        "ORDER BY id DESC", a=action, t=target)
    assert rows, f"no audit event {action} on {target}"
    assert rows[0].actor == env.actor
    parsed: dict[str, Any] = json.loads(str(rows[0].detail))
    assert "before" in parsed and "after" in parsed
    return parsed


def add_model(env: Env, model_id: str, base_url: str = BUILTIN_BASE_URL,
              upstream_model: str = "faregate-dev", **fields: Any) -> dict[str, Any]:
    """An operator adds the model in the console; its upstream route is added directly (the
    upstream console is tested elsewhere)."""
    r = env.admin.post("/admin/api/models", {"id": model_id, **fields})
    assert r.status_code == 201, r.text
    made = audited(env, "model.created", f"model:{model_id}")
    assert made["before"] is None and made["after"]["id"] == model_id
    with env.dep.engine.begin() as conn:
        add_upstream(conn, name=f"up-{model_id}", base_url=base_url,
                     model_map={model_id: upstream_model}, api_key=None, api_key_env=None,
                     cipher=env.dep.cipher)
    out: dict[str, Any] = r.json()
    return out


def works(env: Env, key: str, model: str, **body: Any) -> httpx2.Response:
    """Wait until the servers route `model` (the catalog reloads within about a second)."""
    def ok() -> httpx2.Response | None:
        r = chat(env, key, model, **body)
        return r if r.status_code == 200 else None
    return eventually(ok)


def test_a_tier_0_organization_cannot_use_a_tier_1_model(env: Env) -> None:
    out = add_model(env, "premium", input_usd_per_1m="2", output_usd_per_1m="8", min_tier=1)
    assert out["min_tier"] == 1 and out["price"]["input_usd_per_1m"] == "2"
    assert out["price"]["input_nano_usd_per_1m"] == 2_000_000_000
    works(env, env.key(), "premium")  # an unlimited organization may

    owner, org = verified_owner(env.dep, env.base)  # signed up: tier 0
    key = owner.post(f"/api/orgs/{org}/keys", {"name": "k"}).json()["key"]
    with env.dep.engine.begin() as conn:
        grant(conn, org, ONE_DOLLAR, actor="test", reason="test")
    r = chat(env, key, "premium")
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "model_not_found"
    assert r.json()["error"]["message"] == \
        "The model `premium` does not exist or you do not have access to it."
    assert "premium" not in listed(env, key)
    assert "faregate-dev" in listed(env, key)
    assert get_model(env, key, "premium").status_code == 404
    assert chat(env, key, "faregate-dev").status_code == 200

    # The first top-up raises the tier (another part of the system): here, directly.
    with env.dep.engine.begin() as conn:
        conn.execute(organizations.update().where(organizations.c.id == org).values(tier=1))
    works(env, key, "premium")
    assert "premium" in listed(env, key)
    assert get_model(env, key, "premium").json()["id"] == "premium"


def test_aliases_hidden_models_and_the_context_window(env: Env) -> None:
    add_model(env, "mid", input_usd_per_1m="1", output_usd_per_1m="2", context_window=100)
    key = env.key()
    r = env.admin.post("/admin/api/models/mid/aliases", {"alias": "mid-latest"})
    assert r.status_code == 201, r.text
    assert r.json()["aliases"] == ["mid-latest"]
    assert audited(env, "model.alias_added", "model:mid")["after"] == {
        "alias": "mid-latest", "model_id": "mid"}
    # An alias may not take a model's name or another alias's.
    assert env.admin.post("/admin/api/models/mid/aliases",
                          {"alias": "faregate-dev"}).status_code == 409
    assert env.admin.post("/admin/api/models/premium/aliases",
                          {"alias": "mid-latest"}).status_code == 409

    r = works(env, key, "mid-latest")
    assert r.json()["model"] == "mid-latest"  # the client sees the name it asked for
    rec = record(env, key, r.headers["x-request-id"])
    assert charged_at(rec, ModelPrice(1_000_000_000, 1_000_000_000, 2_000_000_000))
    with httpx2.Client(base_url=env.base, timeout=60.0) as http, http.stream(
            "POST", "/v1/chat/completions", json={"model": "mid-latest", "messages": MESSAGES,
                                                  "stream": True},
            headers={"Authorization": f"Bearer {key}"}) as resp:
        events = [json.loads(e) for e in sse_data(resp.read()) if e != b"[DONE]"]
    assert events and {e["model"] for e in events} == {"mid-latest"}
    assert {"mid", "mid-latest"} <= listed(env, key)
    assert get_model(env, key, "mid-latest").json()["id"] == "mid-latest"

    # The context window: a completion limit alone above it is refused as OpenAI does; with
    # no limit given, the default is kept inside it.
    r = chat(env, key, "mid", max_tokens=101)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "context_length_exceeded"
    assert chat(env, key, "mid").status_code == 200

    # Hidden: not listed, still callable and fetchable by name.
    r = env.admin.patch("/admin/api/models/mid", {"visibility": "hidden"})
    assert r.status_code == 200 and r.json()["visibility"] == "hidden"
    assert audited(env, "model.updated", "model:mid") == {
        "before": {"visibility": "public"}, "after": {"visibility": "hidden"}}
    eventually(lambda: True if "mid" not in listed(env, key) else None)
    assert "mid-latest" not in listed(env, key)
    assert chat(env, key, "mid").status_code == 200
    assert get_model(env, key, "mid").json()["id"] == "mid"

    r = env.admin.delete("/admin/api/models/mid/aliases/mid-latest")
    assert r.status_code == 204
    assert audited(env, "model.alias_removed", "model:mid")["before"] == {
        "alias": "mid-latest", "model_id": "mid"}
    eventually(lambda: True if chat(env, key, "mid-latest").status_code == 404 else None)


def test_a_running_request_keeps_the_price_it_started_with(env: Env) -> None:
    old = ModelPrice(1_000_000_000, 1_000_000_000, 10_000_000_000)
    new = ModelPrice(3_000_000_000, 3_000_000_000, 30_000_000_000)
    add_model(env, "slowpoke", env.slow.base_url + "/v1", "faregate-dev",
              input_usd_per_1m="1", output_usd_per_1m="10")
    key = env.key()
    works(env, key, "slowpoke", max_tokens=1)

    started, done = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def slow_stream() -> None:
        with httpx2.Client(base_url=env.base, timeout=120.0) as http, http.stream(
                "POST", "/v1/chat/completions",
                json={"model": "slowpoke", "messages": MESSAGES, "stream": True,
                      "max_tokens": 12},
                headers={"Authorization": f"Bearer {key}"}) as resp:
            seen["request_id"] = resp.headers["x-request-id"]
            for _ in resp.iter_bytes():
                started.set()  # the hold was made before the first byte came
        done.set()

    thread = threading.Thread(target=slow_stream)
    thread.start()
    try:
        assert started.wait(30)
        r = env.admin.patch("/admin/api/models/slowpoke", {
            "input_usd_per_1m": "3", "cached_input_usd_per_1m": "3", "output_usd_per_1m": "30"})
        assert r.status_code == 200, r.text
        assert r.json()["price"]["output_nano_usd_per_1m"] == 30_000_000_000

        def new_price_in_force() -> dict[str, Any] | None:
            r = chat(env, key, "slowpoke", max_tokens=1)
            rec = record(env, key, r.headers["x-request-id"])
            return rec if charged_at(rec, new) else None
        eventually(new_price_in_force)
        # The slow request was still running when new requests already paid the new price.
        assert not done.is_set()
    finally:
        thread.join(120)
    rec = record(env, key, seen["request_id"])
    assert rec["status"] == "ok" and rec["completion_tokens"] >= 8
    assert charged_at(rec, old)
    changed = audited(env, "model.updated", "model:slowpoke")
    assert changed["before"] == {"input_nano_per_1m": 1_000_000_000,
                                 "cached_input_nano_per_1m": 1_000_000_000,
                                 "output_nano_per_1m": 10_000_000_000}
    assert changed["after"] == {"input_nano_per_1m": 3_000_000_000,
                                "cached_input_nano_per_1m": 3_000_000_000,
                                "output_nano_per_1m": 30_000_000_000}


def _times(nano: int, numerator: int, denominator: int) -> int:
    """ceil(nano × numerator / denominator), written out independently of faregate.pricing."""
    return -(-nano * numerator // denominator)


def test_price_groups_change_the_charge_exactly(env: Env) -> None:
    add_model(env, "grouped", input_usd_per_1m="0.333333333", cached_input_usd_per_1m="0.1",
              output_usd_per_1m="1.7")
    listed_price = ModelPrice(333_333_333, 100_000_000, 1_700_000_000)
    key, org = env.key("reseller"), env.org_of("reseller")
    r = works(env, key, "grouped")
    assert charged_at(record(env, key, r.headers["x-request-id"]), listed_price)

    r = env.admin.put("/admin/api/price-groups/resellers", {"multiplier": "0.8",
                                                             "description": "partners"})
    assert r.status_code == 200, r.text
    assert (r.json()["multiplier"], r.json()["multiplier_ppm"]) == ("0.8", 800_000)
    assert audited(env, "price_group.created", "price_group:resellers")["after"] == {
        "name": "resellers", "multiplier_ppm": 800_000, "description": "partners"}
    r = env.admin.put("/admin/api/models/grouped/multipliers/resellers",
                      {"multiplier": "1.333333"})
    assert r.status_code == 200, r.text
    group_prices = {g["group"]: g for g in r.json()["group_prices"]}
    assert group_prices["resellers"]["source"] == "model"
    assert audited(env, "model.group_multiplier_set", "model:grouped")["after"] == {
        "group": "resellers", "multiplier_ppm": 1_333_333}
    r = env.admin.put(f"/admin/api/price-groups/resellers/organizations/{org}")
    assert r.status_code == 200, r.text
    assert audited(env, "organization.price_group_set", org) == {
        "before": {"price_group": "default"}, "after": {"price_group": "resellers"}}

    own = ModelPrice(_times(333_333_333, 1_333_333, 10**6), _times(100_000_000, 1_333_333, 10**6),
                     _times(1_700_000_000, 1_333_333, 10**6))
    assert own == ModelPrice(444_444_333, 133_333_300, 2_266_666_100)

    def group_price_in_force() -> dict[str, Any] | None:
        r = chat(env, key, "grouped")
        rec = record(env, key, r.headers["x-request-id"])
        return rec if charged_at(rec, own) else None
    rec = eventually(group_price_in_force)
    assert not charged_at(rec, listed_price)
    # Another model in the group: the group's own x0.8.
    dev = ModelPrice(500_000_000, 250_000_000, 1_500_000_000)
    r = chat(env, key, "faregate-dev")
    assert charged_at(record(env, key, r.headers["x-request-id"]),
                      ModelPrice(*(_times(p, 8, 10) for p in (500_000_000, 250_000_000,
                                                              1_500_000_000))))
    # Others still pay list price.
    r = chat(env, env.key(), "faregate-dev")
    assert charged_at(record(env, env.key(), r.headers["x-request-id"]), dev)

    listed_groups = {g["name"]: g for g in env.admin.get("/admin/api/price-groups").json()["data"]}
    assert listed_groups["resellers"]["multiplier_ppm"] == 800_000
    assert listed_groups["default"]["multiplier_ppm"] == 1_000_000
    models = {m["id"]: m for m in env.admin.get("/admin/api/models").json()["data"]}
    assert models["grouped"]["price"]["input_usd_per_1m"] == "0.333333333"
    assert {g["group"]: g["price"]["input_nano_usd_per_1m"]
            for g in models["grouped"]["group_prices"]} == {"default": 333_333_333,
                                                            "resellers": 444_444_333}


def test_console_refuses_bad_input(env: Env) -> None:
    bad = [("/admin/api/models", {"id": "x y"}), ("/admin/api/models",
                                                  {"id": "neg", "input_usd_per_1m": "-1"}),
           ("/admin/api/models", {"id": "frac", "input_usd_per_1m": "0.0000000001"})]
    for path, body in bad:
        r = env.admin.post(path, body)
        assert r.status_code == 400, (body, r.text)
    assert env.admin.post("/admin/api/models", {"id": "faregate-dev"}).status_code == 409
    assert env.admin.put("/admin/api/price-groups/x", {"multiplier": "abc"}).status_code == 400
    assert env.admin.patch("/admin/api/models/nope", {"min_tier": 1}).status_code == 404
    assert env.admin.put("/admin/api/models/faregate-dev/multipliers/nope",
                         {"multiplier": "2"}).status_code == 404
