"""Route order: priority groups, weighted random order within a group, open breakers last."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from faregate.upstream.routing import order


@dataclass(frozen=True)
class R:
    upstream_id: int
    priority: int = 0
    weight: int = 1


def _all(upstream_id: int) -> bool:
    return True


def test_priority_groups_come_in_order() -> None:
    rng = random.Random(1)
    routes = [R(1, 0), R(2, 0), R(3, 1), R(4, 2), R(5, 1)]
    for _ in range(200):
        got = order(routes, _all, rng)
        assert sorted(got, key=lambda r: r.upstream_id) == sorted(routes,
                                                                  key=lambda r: r.upstream_id)
        assert [r.priority for r in got] == [0, 0, 1, 1, 2]


def test_weights_share_the_first_place() -> None:
    rng = random.Random(42)
    routes = [R(1, weight=1), R(2, weight=3)]
    first = Counter(order(routes, _all, rng)[0].upstream_id for _ in range(4000))
    share = first[2] / 4000
    assert 0.70 < share < 0.80  # 3/4 expected; seeded, so this is exact run to run


def test_equal_weights_split_evenly() -> None:
    rng = random.Random(7)
    routes = [R(1), R(2)]
    first = Counter(order(routes, _all, rng)[0].upstream_id for _ in range(4000))
    assert 0.45 < first[1] / 4000 < 0.55


def test_open_breakers_go_last_in_their_own_order() -> None:
    rng = random.Random(3)
    routes = [R(1, 0), R(2, 1), R(3, 2)]
    closed = {2, 3}
    got = order(routes, lambda i: i in closed, rng)
    assert [r.upstream_id for r in got] == [2, 3, 1]
    got = order(routes, lambda i: False, rng)
    assert [r.upstream_id for r in got] == [1, 2, 3]


def test_one_route_is_returned_as_is() -> None:
    routes = [R(9)]
    assert order(routes, lambda i: False, random.Random(0)) == routes
