"""The usage CSV: one line per bucket x group with usage, amounts as exact decimal USD.

Text cells that a spreadsheet would read as a formula (a key named "=HYPERLINK(...)") are
prefixed with an apostrophe, as OWASP advises against CSV injection."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator, Sequence

from faregate.kit.money import nano_to_usd
from faregate.usage.labels import Labels
from faregate.usage.report import Bucket, GroupKey

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_SUM_COLUMNS = ["requests", "failed_requests", "input_tokens", "cached_tokens",
                "output_tokens", "cost_usd", "charged_usd", "writeoff_usd"]


class _Echo:
    """A file whose write returns the text, so csv.writer renders one line at a time."""

    def write(self, text: str) -> str:
        return text


def _text(value: str | None) -> str:
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def header(group_by: Sequence[GroupKey]) -> list[str]:
    columns = ["bucket_start", "bucket_end"]
    for key in group_by:
        columns.append(key)
        if key == "api_key_id":
            columns += ["api_key_name", "api_key_redacted"]
        elif key == "project_id":
            columns.append("project_name")
    return columns + _SUM_COLUMNS


def lines(buckets: list[Bucket], group_by: Sequence[GroupKey], names: Labels) -> Iterator[str]:
    """The CSV text, a bucket at a time (a header line first)."""
    writer = csv.writer(_Echo())
    yield str(writer.writerow(header(group_by)))
    for bucket in buckets:
        chunk: list[str] = []
        for row in bucket.rows:
            cells: list[str | int] = [_iso(bucket.start), _iso(bucket.end)]
            for key in group_by:
                value = row.group.get(key)
                cells.append(_text(value))
                if key == "api_key_id":
                    label = names.api_keys.get(value or "")
                    cells += [_text(label.name if label else None),
                              _text(label.redacted if label else None)]
                elif key == "project_id":
                    cells.append(_text(names.projects.get(value or "")))
            s = row.sums
            cells += [s.requests, s.failed_requests, s.input_tokens, s.cached_tokens,
                      s.output_tokens, nano_to_usd(s.cost_nano), nano_to_usd(s.charged_nano),
                      nano_to_usd(s.writeoff_nano)]
            chunk.append(str(writer.writerow(cells)))
        if chunk:
            yield "".join(chunk)
