"""Display names for the keys and projects a usage report mentions, in one query."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from faregate.db.schema import api_keys, projects

MAX_IDS = 10_000  # a report never names more; a bound on the IN lists


@dataclass(frozen=True, slots=True)
class KeyLabel:
    name: str
    redacted: str


@dataclass(frozen=True, slots=True)
class Labels:
    api_keys: dict[str, KeyLabel] = field(default_factory=dict)
    projects: dict[str, str] = field(default_factory=dict)  # id -> name


def labels(conn: sa.Connection, organization_id: str, *, api_key_ids: Collection[str],
           project_ids: Collection[str]) -> Labels:
    """The names of these keys and projects of the organization (revoked keys and archived
    projects included: they have history). Unknown ids are left out."""
    keys = sorted(set(api_key_ids) - {""})[:MAX_IDS]
    projs = sorted(set(project_ids) - {""})[:MAX_IDS]
    parts: list[sa.Select[Any]] = []
    if keys:
        k = api_keys.c
        parts.append(sa.select(sa.literal_column("'key'", sa.String), k.id, k.name, k.redacted)
                     .where(k.organization_id == organization_id, k.id.in_(keys)))
    if projs:
        p = projects.c
        parts.append(sa.select(sa.literal_column("'project'", sa.String), p.id, p.name,
                               sa.cast(sa.null(), sa.String))
                     .where(p.organization_id == organization_id, p.id.in_(projs)))
    if not parts:
        return Labels()
    query: sa.Select[Any] | sa.CompoundSelect[Any] = (
        parts[0] if len(parts) == 1 else sa.union_all(*parts))
    found = Labels()
    for row in conn.execute(query):
        kind, id_, name, redacted = tuple(row)
        if kind == "key":
            found.api_keys[id_] = KeyLabel(name, redacted or "")
        else:
            found.projects[id_] = name
    return found
