"""schemathesis over the server's own /openapi.json, against one real server: every operation
gets a few generated requests (valid ones, and some that break the schema) from a signed-in,
verified organization owner and a signed-in admin operator (so requests get past
authentication; the owner's organization is in the path where an operation takes one). No
answer may be a 5xx, and every answer must match the response schema the operation declares."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests import services
from tests.e2e.api_client import verified_owner
from tests.e2e.fixtures_gateway import Gateway, running_gateway
from tests.e2e.operator_client import OperatorClient, create_operator

pytestmark = pytest.mark.timeout(300)

# Per operation; FAREGATE_TEST_FUZZ_SCALE=10 (say) for a longer hunt by hand.
SCALE = int(os.environ.get("FAREGATE_TEST_FUZZ_SCALE", "1"))
EXAMPLES = {GenerationMode.POSITIVE: 4 * SCALE, GenerationMode.NEGATIVE: 2 * SCALE}
# Signing out would end the sessions the rest runs on; the live usage feed is an endless
# server-sent event stream.
SKIP = {("POST", "/api/auth/signout"), ("POST", "/admin/api/auth/signout"),
        ("GET", "/api/orgs/{org_id}/usage/live")}
CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
       pg_admin_url: str) -> Iterator[Gateway]:
    with contextlib.ExitStack() as stack:
        url = None
        if request.param == "postgres":
            url = stack.enter_context(services.database_factory(pg_admin_url))()
        gateway = stack.enter_context(running_gateway(
            tmp_path_factory.mktemp("schemathesis") / "fg", url))
        yield gateway
        assert gateway.dep.verify() == []


def _fuzz(op: Any, mode: GenerationMode, examples: int, fixed: dict[str, str] | None,
          base: str, session: requests.Session, token: str) -> None:
    """`examples` generated requests to one operation; raises on the first failed check."""

    @settings(max_examples=examples, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(op.as_strategy(mode, path_parameters=fixed))
    def check(case: Any) -> None:
        response = case.call(base_url=base, session=session, headers={"X-CSRF-Token": token},
                             timeout=30)
        case.validate_response(response, checks=CHECKS)

    check()


def test_openapi_operations_never_fail_and_match_their_schema(gw: Gateway) -> None:
    base = gw.server.base_url
    owner, org = verified_owner(gw.dep, base)
    admin = OperatorClient(base).signed_in(
        create_operator(gw.dep, "fuzz-admin@example.com", "admin"))
    session = requests.Session()
    for client in (owner, admin):
        for name, value in client.http.cookies.items():
            session.cookies.set(name, value)
    csrf = {"/api/": owner.http.cookies["fg_csrf"],
            "/admin/api/": admin.http.cookies["fg_admin_csrf"]}
    # What schemathesis found once (500s), now 400 invalid_value: numbers past 64 bits, a
    # time that falls before the year 1 in UTC.
    for client, method, path, body in (
            (owner, "GET", f"/api/orgs/{org}/credit-history?before=-{2**90}", None),
            (admin, "GET", "/admin/api/audit?until=0001-01-01T00:00:00%2B00:04", None),
            (admin, "GET", f"/admin/api/audit?cursor={2**90}", None),
            (admin, "PUT", f"/admin/api/tiers/{2**80}", {"min_paid_nano": 1})):
        r = client.request(method, path, body)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_value"), r.text
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    problems: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # every operation's schema loads
        op = result.ok()
        if (op.method.upper(), op.path) in SKIP:
            continue
        operations += 1
        fixed = {"org_id": org} if "{org_id}" in op.path else None
        token = next((t for prefix, t in csrf.items() if op.path.startswith(prefix)), "")
        for mode, examples in EXAMPLES.items():
            try:
                _fuzz(op, mode, examples, fixed, base, session, token)
            except Unsatisfiable:  # nothing in the operation can be made invalid
                pass
            except (Exception, BaseExceptionGroup) as failure:
                problems.append(f"{op.method.upper()} {op.path} ({mode.value}): {failure}"[:3000])
    owner.close()
    admin.close()
    assert operations > 90
    log = gw.server.log.read_text(errors="replace")
    assert problems == [], json.dumps(problems, indent=1) + "\nserver log:\n" + log[-20000:]
