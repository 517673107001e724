"""The order in which a request tries a model's upstreams.

- By priority: every upstream of a lower priority number is tried before any of a higher one.
- Within one priority, a weighted random order: an upstream of weight 3 comes first three
  times as often as one of weight 1 (Efraimidis-Spirakis: sort by u^(1/weight), u uniform).
- Upstreams whose breaker is open go last, in the same order among themselves: they are the
  last resort rather than skipped, so a model whose every upstream has an open breaker still
  gets one real attempt per upstream (an open breaker is a process's guess from recent
  failures; the upstream may be back before the cooldown ends) instead of failing at once."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar


class Candidate(Protocol):
    @property
    def upstream_id(self) -> int: ...

    @property
    def priority(self) -> int: ...

    @property
    def weight(self) -> int: ...


C = TypeVar("C", bound=Candidate)


def order(candidates: Sequence[C], available: Callable[[int], bool],
          rng: random.Random) -> list[C]:
    """The candidates in the order to try them; `available(upstream_id)` is False for an
    upstream whose breaker is open."""
    if len(candidates) == 1:
        return list(candidates)
    keyed = [(c.priority, -(rng.random() ** (1.0 / max(c.weight, 1))), c) for c in candidates]
    keyed.sort(key=lambda k: (k[0], k[1]))
    ordered = [k[2] for k in keyed]
    up = [c for c in ordered if available(c.upstream_id)]
    if len(up) == len(ordered):
        return ordered
    return up + [c for c in ordered if not available(c.upstream_id)]
