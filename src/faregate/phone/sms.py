"""Sending SMS: a file outbox for development and tests, and Twilio for production.

The text of a message holds a one-time code, so it is never logged; numbers are logged masked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
)
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from faregate.kit.ids import new_id
from faregate.phone.numbers import mask_phone

log = logging.getLogger(__name__)

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
OUTBOX_FILE = "sms.jsonl"


class SmsDeliveryError(RuntimeError):
    """The provider did not accept the message. Never carries the message text."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class SmsSender(Protocol):
    async def send(self, to_e164: str, text: str) -> None: ...


def _require_e164(to_e164: str) -> None:
    if not _E164.fullmatch(to_e164):
        raise ValueError("SMS recipient must be an E.164 number (+ and 7 to 15 digits)")


class OutboxSmsSender:
    """Appends each message as one JSON line to <outbox_dir>/sms.jsonl (dir 0700, file 0600)."""

    def __init__(self, outbox_dir: Path) -> None:
        self.outbox_dir = Path(outbox_dir)
        self.path = self.outbox_dir / OUTBOX_FILE

    async def send(self, to_e164: str, text: str) -> None:
        _require_e164(to_e164)
        record = {
            "id": new_id("sms"),
            "at": datetime.now(UTC).isoformat(),
            "to": to_e164,
            "text": text,
        }
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        await asyncio.to_thread(self._append, line)
        log.info("sms to %s (outbox)", mask_phone(to_e164))

    def _append(self, line: bytes) -> None:
        if not self.outbox_dir.is_dir():
            self.outbox_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.outbox_dir, 0o700)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.path, flags, 0o600)
        try:
            os.fchmod(fd, 0o600)
            written = os.write(fd, line)  # one write: lines never interleave
            if written != len(line):
                raise OSError(f"short write to {self.path}")
        finally:
            os.close(fd)


def _twilio_client(
    account_sid: str, auth_token: str, base_url: str | None, timeout_s: float
) -> Any:
    client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout_s))
    # The SDK reads TWILIO_EDGE / TWILIO_REGION from the environment and rewrites hostnames
    # with them; only our settings count (a regional endpoint is a base_url).
    client.edge = None
    client.region = None
    if base_url is not None:
        # The seam for tests and regional/proxy endpoints: the Api domain's root URL.
        client.api.base_url = base_url.rstrip("/")
    return client


class TwilioSmsSender:
    """Sends through Twilio's Messages API with the official SDK, off the event loop."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        *,
        base_url: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if not account_sid or not auth_token or not from_number:
            raise ValueError("Twilio needs an account SID, an auth token and a from number")
        if base_url is not None and not base_url.startswith(("https://", "http://")):
            raise ValueError("Twilio base_url must be an http(s):// URL")
        self.from_number = from_number
        self._client = _twilio_client(account_sid, auth_token, base_url, timeout_s)

    async def send(self, to_e164: str, text: str) -> None:
        _require_e164(to_e164)
        sid = await asyncio.to_thread(self._create, to_e164, text)
        log.info("sms to %s via twilio (%s)", mask_phone(to_e164), sid)

    def _create(self, to_e164: str, text: str) -> str:
        try:
            message = self._client.messages.create(to=to_e164, from_=self.from_number, body=text)
        except TwilioRestException as exc:
            log.warning(
                "sms to %s via twilio failed: HTTP %s, code %s",
                mask_phone(to_e164),
                exc.status,
                exc.code,
            )
            raise SmsDeliveryError(
                f"Twilio refused the message (HTTP {exc.status}, code {exc.code})",
                status=int(exc.status),
                code=exc.code,
            ) from exc
        except (TwilioException, OSError) as exc:  # requests' errors are OSErrors
            log.warning("sms to %s via twilio failed: %s", mask_phone(to_e164), type(exc).__name__)
            raise SmsDeliveryError(f"Twilio could not be reached ({type(exc).__name__})") from exc
        return str(message.sid)


def sms_sender_from(
    kind: Literal["outbox", "twilio"] = "outbox",
    *,
    outbox_dir: Path | None = None,
    twilio_account_sid: str | None = None,
    twilio_auth_token: str | None = None,
    twilio_from: str | None = None,
    twilio_base_url: str | None = None,
) -> SmsSender:
    """Build the configured sender: "outbox" (the default) or "twilio"."""
    if kind == "outbox":
        if outbox_dir is None:
            raise ValueError("the outbox SMS sender needs outbox_dir")
        return OutboxSmsSender(outbox_dir)
    if kind == "twilio":
        if not (twilio_account_sid and twilio_auth_token and twilio_from):
            raise ValueError(
                "the twilio SMS sender needs twilio_account_sid, twilio_auth_token, twilio_from"
            )
        return TwilioSmsSender(
            twilio_account_sid, twilio_auth_token, twilio_from, base_url=twilio_base_url
        )
    raise ValueError(f"unknown SMS sender {kind!r}; expected 'outbox' or 'twilio'")
