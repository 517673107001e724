"""The money check every fault test ends with (the issue's judged criteria): the balance is not
negative, nothing is held any more, the balance went down by exactly the sum of the charges,
the charges equal the usage costs to the nano-dollar (each priced by the written rule), the
ledger's usage transfers add up to the same sum, no request was charged twice, and
`faregate ledger verify` (the function it calls) finds nothing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from faregate.catalog.service import ModelPrice
from faregate.identity.users import User
from faregate.pricing.cost import cost
from tests.harness import Deployment


@dataclass(frozen=True)
class Money:
    balance_nano: int
    charged_nano: int
    records: dict[str, str]  # request id -> usage record status


def check_money(dep: Deployment, user: User, granted_nano: int, price: ModelPrice, *,
                answered: frozenset[str] | set[str] = frozenset()) -> Money:
    """Call once every server has stopped or the sweeper has voided the dead ones' leases.
    `answered`: request ids the clients saw completed; each must have its one usage record."""
    balance_nano, held_nano, leased_nano = dep.balance(user)
    assert balance_nano >= 0
    assert held_nano == 0 and leased_nano == 0, (held_nano, leased_nano)
    rows = dep.query(
        "SELECT u.request_id, u.status, u.prompt_tokens, u.cached_tokens, u.completion_tokens, "
        "u.cost_nano, u.charged_nano, u.writeoff_nano FROM usage_records u "
        "JOIN organizations o ON o.id = u.organization_id WHERE o.id = :org",
        org=user.organization_id)
    twice = [rid for rid, n in Counter(str(r.request_id) for r in rows).items() if n > 1]
    assert not twice, f"charged twice: {twice[:5]}"
    for r in rows:
        assert int(r.cost_nano) == cost(price, int(r.prompt_tokens), int(r.cached_tokens),
                                        int(r.completion_tokens)), r
        assert int(r.writeoff_nano) == 0, r  # the reservation always covered the call
    charged = sum(int(r.charged_nano) for r in rows)
    assert charged == sum(int(r.cost_nano) for r in rows)
    assert granted_nano - balance_nano == charged
    [posted] = dep.query(
        "SELECT COALESCE(SUM(t.amount_nano), 0) AS total FROM transfers t "
        "JOIN accounts a ON a.id = t.debit_account_id "
        "WHERE t.kind = 'usage' AND a.organization_id = :org", org=user.organization_id)
    assert int(posted.total) == charged
    records = {str(r.request_id): str(r.status) for r in rows}
    missing = answered - set(records)
    assert not missing, f"answered but not charged: {sorted(missing)[:5]}"
    assert dep.query("SELECT id FROM leases WHERE status = 'open'") == []
    assert dep.verify() == []
    return Money(balance_nano, charged, records)
