"""The newest usage records of an organization, for the dashboard's live view.

This is the one reader of raw usage records besides the rollup worker, and it reads only the
newest ones: every query is bounded below by settlement time, so it is a range scan of the
(organization_id, settled_at) index, however many records the organization has.

Records do not become visible in id order or in settlement-time order: on PostgreSQL ids are
taken at insert, not at commit, and each server process stamps `settled_at` with its own clock
when a batch starts, before it commits. So a follower looks back `LOOKBACK` behind the newest
settlement time it has seen and remembers which ids in that window it has already delivered;
a record that becomes visible late still shows up (flagged as out of order). The stateless
`after` query (for polling) only returns ids above the cursor, so it can miss such a record.

The live feed runs one follower per organization and process, shared by all its viewers
(faregate.api.usage_hub); `catch_up` is what a viewer is shown when it joins."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from faregate.db.schema import api_keys, projects, usage_records

LOOKBACK = dt.timedelta(seconds=5)
POLL_LIMIT = 200  # the most records one poll returns (the newest, when more arrived)


@dataclass(frozen=True, slots=True)
class LiveRecord:
    id: int
    request_id: str
    settled_at: dt.datetime
    model: str
    endpoint: str
    api_key_id: str | None
    api_key_name: str | None
    api_key_redacted: str | None
    project_id: str | None
    project_name: str | None
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    cost_nano: int
    charged_nano: int
    writeoff_nano: int
    status: str
    latency_ms: int
    streamed: bool


def _select(organization_id: str) -> sa.Select[Any]:
    r, k, p = usage_records.c, api_keys.c, projects.c
    return (sa.select(r.id, r.request_id, r.settled_at, r.model, r.endpoint, r.api_key_id,
                      k.name, k.redacted, r.project_id, p.name, r.prompt_tokens,
                      r.cached_tokens, r.completion_tokens, r.cost_nano, r.charged_nano,
                      r.writeoff_nano, r.status, r.latency_ms, r.streamed)
            .select_from(usage_records.outerjoin(api_keys, k.id == r.api_key_id)
                         .outerjoin(projects, p.id == r.project_id))
            .where(r.organization_id == organization_id))


def _record(row: sa.Row[Any]) -> LiveRecord:
    v = tuple(row)
    return LiveRecord(int(v[0]), v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9],
                      int(v[10]), int(v[11]), int(v[12]), int(v[13]), int(v[14]), int(v[15]),
                      v[16], int(v[17]), bool(v[18]))


def newest(conn: sa.Connection, organization_id: str, limit: int) -> list[LiveRecord]:
    """The organization's `limit` newest records, oldest first."""
    r = usage_records.c
    rows = conn.execute(_select(organization_id)
                        .order_by(r.settled_at.desc(), r.id.desc()).limit(limit))
    return sorted((_record(row) for row in rows), key=lambda rec: rec.id)


def record_time(conn: sa.Connection, organization_id: str, record_id: int) -> dt.datetime | None:
    """When the organization's record `record_id` settled; None if it has no such record."""
    r = usage_records.c
    found: dt.datetime | None = conn.execute(sa.select(r.settled_at).where(
        r.id == record_id, r.organization_id == organization_id)).scalar()
    return found


def after(conn: sa.Connection, organization_id: str, record_id: int,
          limit: int) -> tuple[list[LiveRecord], bool] | None:
    """Up to `limit` records with ids above `record_id`, in id order, and whether there are
    more; None if the organization has no record `record_id`."""
    since = record_time(conn, organization_id, record_id)
    if since is None:
        return None
    r = usage_records.c
    rows = [_record(row) for row in conn.execute(
        _select(organization_id).where(r.settled_at >= since - LOOKBACK, r.id > record_id)
        .order_by(r.id).limit(limit + 1))]
    return rows[:limit], len(rows) > limit


@dataclass(slots=True)
class Follower:
    """Follows one organization's records as they settle. Each `poll` returns the records not
    returned before, oldest first, each with whether it is in order (its id is above every id
    returned before it). Records with ids at or below `floor_id` count as already delivered."""

    organization_id: str
    floor_id: int
    high: dt.datetime  # the newest settlement time seen
    last_id: int  # the highest id returned
    seen: dict[int, dt.datetime] = field(default_factory=dict)  # ids returned, in the window

    @classmethod
    def start(cls, conn: sa.Connection, organization_id: str, *, resume_after: int | None,
              backlog: int) -> tuple[Follower, list[LiveRecord]]:
        """Resume after record `resume_after` (when the organization has it), or start at the
        newest record, returning the `backlog` newest records to show first."""
        if resume_after is not None:
            since = record_time(conn, organization_id, resume_after)
            if since is not None:
                return cls(organization_id, resume_after, since, resume_after), []
        recent = newest(conn, organization_id, max(backlog, 1))
        floor = max((rec.id for rec in recent), default=0)
        high = max((rec.settled_at for rec in recent), default=dt.datetime.now(dt.UTC))
        follower = cls(organization_id, floor, high, floor,
                       {rec.id: rec.settled_at for rec in recent})
        return follower, recent[-backlog:] if backlog else []

    def poll(self, conn: sa.Connection) -> list[tuple[LiveRecord, bool]]:
        r = usage_records.c
        rows = conn.execute(
            _select(self.organization_id)
            .where(r.settled_at >= self.high - LOOKBACK, r.id > self.floor_id)
            .order_by(r.id.desc()).limit(POLL_LIMIT))
        fresh = sorted((rec for rec in map(_record, rows) if rec.id not in self.seen),
                       key=lambda rec: rec.id)
        out: list[tuple[LiveRecord, bool]] = []
        for rec in fresh:
            self.seen[rec.id] = rec.settled_at
            in_order = rec.id > self.last_id
            self.last_id = max(self.last_id, rec.id)
            self.high = max(self.high, rec.settled_at)
            out.append((rec, in_order))
        # What settled before the window can no longer be returned by the query.
        cutoff = self.high - LOOKBACK
        self.seen = {i: t for i, t in self.seen.items() if t >= cutoff}
        return out


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What a new viewer is shown first, and where it stands afterwards."""

    records: list[LiveRecord]  # oldest first
    floor_id: int  # it has had (or is not to be shown) every record at or below this id
    cursor_id: int  # its resume point: the highest id it knows of


def catch_up(conn: sa.Connection, organization_id: str, *, resume_after: int | None,
             backlog: int) -> CatchUp:
    """The records after `resume_after` when the organization has that record (the newest
    `POLL_LIMIT` of them, within `LOOKBACK` of its settlement time; the floor is
    `resume_after`), else the `backlog` newest records (floor 0: a record that becomes visible
    late is still news). The cursor is the highest id of these, or of the floor / the newest
    record."""
    if resume_after is not None:
        since = record_time(conn, organization_id, resume_after)
        if since is not None:
            missed = Follower(organization_id, resume_after, since, resume_after).poll(conn)
            records = [rec for rec, _ in missed]
            return CatchUp(records, resume_after, max((r.id for r in records),
                                                      default=resume_after))
    recent = newest(conn, organization_id, max(backlog, 1))
    return CatchUp(recent[-backlog:] if backlog else [], 0,
                   max((rec.id for rec in recent), default=0))
