"""Email senders: a JSON-lines outbox for development, and SMTP for production.

Bodies may hold verification links or tokens: they are never logged.
"""

from __future__ import annotations

import asyncio
import email.message
import email.utils
import json
import logging
import os
import smtplib
import ssl as _ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from faregate.kit.ids import new_id

log = logging.getLogger("faregate.notify")

OUTBOX_FILE = "email.jsonl"
_ADDRESS_FORBIDDEN = frozenset(' \t,;<>"()[]\\')


def _refuse_control_chars(field: str, value: str) -> None:
    # CR/LF would let a caller inject headers; other control characters have no place either.
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"email {field} must not contain control characters (CR/LF)")


def _check_address(field: str, address: str) -> None:
    _refuse_control_chars(field, address)
    local, at, domain = address.partition("@")
    if not at or not local or not domain or "@" in domain:
        raise ValueError(f"email {field} must be one address with exactly one '@'")
    if any(c in _ADDRESS_FORBIDDEN for c in address):
        raise ValueError(f"email {field} must be a bare address")


def _check_sender(sender: str) -> None:
    """Accept 'noreply@example.com' or 'Faregate <noreply@example.com>'."""
    _refuse_control_chars("sender", sender)
    _check_address("sender", email.utils.parseaddr(sender)[1])


@dataclass(frozen=True)
class EmailMessage:
    to: str
    subject: str
    text: str
    html: str | None = None

    def __post_init__(self) -> None:
        _check_address("recipient", self.to)
        _refuse_control_chars("subject", self.subject)


class EmailSender(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class EmailDeliveryError(Exception):
    """The message could not be handed to the mail server."""


class OutboxEmailSender:
    """Appends each message as one JSON line to `outbox_dir/email.jsonl` (dev and tests).

    Each line goes out in one `write` on an O_APPEND descriptor, so writers in several
    threads or processes never interleave their lines.
    """

    def __init__(self, outbox_dir: Path, sender: str) -> None:
        _check_sender(sender)
        self.outbox_dir = outbox_dir
        self.path = outbox_dir / OUTBOX_FILE
        self.sender = sender

    async def send(self, message: EmailMessage) -> None:
        record = {
            "id": new_id("email"),
            "at": datetime.now(UTC).isoformat(),
            "from": self.sender,
            "to": message.to,
            "subject": message.subject,
            "text": message.text,
            "html": message.html,
        }
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        await asyncio.to_thread(self._append, line)
        log.info("email to %s: %s", message.to, message.subject)

    def _append(self, line: bytes) -> None:
        self.outbox_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(self.path, flags, 0o600)
        try:
            written = os.write(fd, line)
            # A short write to a regular file means the disk is full or similar; finish the
            # line rather than leave half of it.
            while written < len(line):
                written += os.write(fd, line[written:])
        finally:
            os.close(fd)


def read_outbox(outbox_dir: Path) -> list[dict[str, object]]:
    """Every message in the outbox, oldest first; empty when nothing was sent yet."""
    try:
        raw = (outbox_dir / OUTBOX_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    messages: list[dict[str, object]] = []
    for line in raw.splitlines():
        if line.strip():
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"outbox line is not a JSON object: {line[:80]!r}")
            messages.append(record)
    return messages


class SmtpEmailSender:
    """Delivers through an SMTP server with the standard library, off the event loop."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        ssl: bool = False,
        timeout_s: float = 10,
    ) -> None:
        _check_sender(sender)
        if not host:
            raise ValueError("SMTP host is required")
        if starttls and ssl:
            raise ValueError("choose either STARTTLS or implicit TLS (ssl), not both")
        if password is not None and username is None:
            raise ValueError("SMTP password given without a username")
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self._password = password
        self.starttls = starttls
        self.ssl = ssl
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return (
            f"SmtpEmailSender(host={self.host!r}, port={self.port}, sender={self.sender!r}, "
            f"username={self.username!r}, starttls={self.starttls}, ssl={self.ssl})"
        )

    def build(self, message: EmailMessage) -> email.message.EmailMessage:
        mime = email.message.EmailMessage()
        mime["From"] = self.sender
        mime["To"] = message.to
        mime["Subject"] = message.subject
        mime["Date"] = email.utils.formatdate(localtime=False)
        domain = email.utils.parseaddr(self.sender)[1].rpartition("@")[2]
        mime["Message-ID"] = email.utils.make_msgid(domain=domain)
        mime.set_content(message.text)
        if message.html is not None:
            mime.add_alternative(message.html, subtype="html")
        return mime

    async def send(self, message: EmailMessage) -> None:
        mime = self.build(message)
        await asyncio.to_thread(self._deliver, mime, message.to)
        log.info("email to %s: %s", message.to, message.subject)

    def _deliver(self, mime: email.message.EmailMessage, to: str) -> None:
        try:
            self._transmit(mime)
        except (smtplib.SMTPException, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if self._password:
                reason = reason.replace(self._password, "***")
            raise EmailDeliveryError(
                f"could not send email to {to} via {self.host}:{self.port}: {reason}"
            ) from None  # the cause could carry the server's echo of our credentials

    def _transmit(self, mime: email.message.EmailMessage) -> None:
        context = _ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.ssl:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        with smtp:
            if self.starttls:
                smtp.starttls(context=context)
            if self.username is not None:
                smtp.login(self.username, self._password or "")
            smtp.send_message(mime)


def email_sender_from(
    kind: str,
    *,
    data_dir: Path,
    sender: str,
    smtp_host: str = "",
    smtp_port: int = 25,
    smtp_username: str | None = None,
    smtp_password: str | None = None,
    smtp_starttls: bool = False,
) -> EmailSender:
    """The sender configured by `kind`: "outbox" (data_dir/outbox) or "smtp"."""
    if kind == "outbox":
        return OutboxEmailSender(data_dir / "outbox", sender)
    if kind == "smtp":
        if not smtp_host:
            raise ValueError("email kind 'smtp' needs an SMTP host")
        return SmtpEmailSender(
            smtp_host,
            smtp_port,
            sender,
            username=smtp_username,
            password=smtp_password,
            starttls=smtp_starttls,
            ssl=smtp_port == 465,
        )
    raise ValueError(f"unknown email sender {kind!r} (expected 'outbox' or 'smtp')")
