"""Two Faregate processes on one PostgreSQL and a small balance: the credit that one process
leased (and holds, idle, for 2 s) is handed back at once when a call on the other needs it,
instead of the call being refused with money left in the balance. Official openai SDK."""

from __future__ import annotations

import time

import openai
import pytest

from faregate.catalog.service import ModelPrice
from tests.harness import Deployment

PRICE = ModelPrice(2_000_000_000, 1_000_000_000, 10_000_000_000)  # $2 / $1 / $10 per 1M
GRANT_NANO = 12_000_000  # $0.012


@pytest.mark.postgres
def test_a_call_on_one_process_gets_the_credit_another_leased(pg_dep: Deployment) -> None:
    dep = pg_dep
    upstream = dep.start_devmodel()
    dep.add_upstream("dev", f"{upstream.base_url}/v1", {"dev": "faregate-dev"}, PRICE)
    user = dep.new_user("handback@example.com", GRANT_NANO)
    _, key = dep.new_key(user)
    a, b = (dep.start_server(FAREGATE_DEV_MODEL="false") for _ in range(2))
    deadline = time.monotonic() + 10
    while len(dep.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND application_name = 'faregate-listen'")) < 2:
        assert time.monotonic() < deadline, "the servers do not LISTEN"
        time.sleep(0.05)
    on_a, on_b = (openai.OpenAI(base_url=f"{s.base_url}/v1", api_key=key, max_retries=0)
                  for s in (a, b))

    # A small call on A: A leases half the balance (leases take at most half of what is
    # left beyond the call's own need), spends a few hundred nano-dollars of it.
    small = on_a.chat.completions.create(
        model="dev", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
    assert small.usage is not None
    _, held, _ = dep.balance(user)
    assert held >= GRANT_NANO // 2 - 1_000_000  # A holds its lease (idle for 2 s)
    # A long prompt on B: reserved as one token per byte of the body (a bound that needs no
    # tokenizer), ~4,000 bytes: $0.008 before any output, more than is not leased. B asks,
    # A hands its lease back, B serves the call.
    prompt = "word " * 780
    big = on_b.chat.completions.create(
        model="dev", messages=[{"role": "user", "content": prompt}], max_tokens=5)
    assert big.usage is not None and big.usage.prompt_tokens > 700
    assert big.choices[0].message.content

    dep.stop_all_servers()
    [row] = dep.query("SELECT count(*) AS n, sum(charged_nano) AS charged FROM usage_records")
    assert row.n == 2
    assert dep.balance(user) == (GRANT_NANO - int(row.charged), 0, 0)
    assert dep.verify() == []
