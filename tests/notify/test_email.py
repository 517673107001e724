"""Email senders: the JSON-lines outbox and SMTP against a real (aiosmtpd) server on loopback."""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import json
import logging
import multiprocessing
import os
import re
import socket
import stat
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from faregate.notify import (
    EmailDeliveryError,
    EmailMessage,
    OutboxEmailSender,
    SmtpEmailSender,
    email_sender_from,
    read_outbox,
)

SENDER = "Faregate <noreply@faregate.test>"
SECRET_LINK = "https://gw.test/verify?token=tok_SECRET123"


# --- messages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "subject"),
    [
        ("alice@example.com\r\nBcc: eve@evil.test", "hi"),
        ("alice@example.com\nBcc: eve@evil.test", "hi"),
        ("alice@example.com", "hi\r\nBcc: eve@evil.test"),
        ("alice@example.com", "hi\nX-Injected: 1"),
        ("alice@example.com", "hi\rX-Injected: 1"),
        ("alice.example.com", "no at sign"),
        ("alice@example.com,eve@evil.test", "two addresses"),
        ("a@b@example.com", "two at signs"),
        ("@example.com", "empty local part"),
        ("alice@", "empty domain"),
        ("Alice <alice@example.com>", "not a bare address"),
    ],
)
def test_message_refuses_bad_headers(to: str, subject: str) -> None:
    with pytest.raises(ValueError, match="email"):
        EmailMessage(to=to, subject=subject, text="body")


def test_message_accepts_multiline_bodies() -> None:
    msg = EmailMessage(to="alice@example.com", subject="Welcome", text="a\r\nb\n", html="<p>\n</p>")
    assert msg.text == "a\r\nb\n"


@pytest.mark.parametrize("sender", ["noreply", "x@y\r\nBcc: eve@evil.test", "a@b@c"])
def test_senders_refuse_bad_from(tmp_path: Path, sender: str) -> None:
    with pytest.raises(ValueError, match="email sender"):
        OutboxEmailSender(tmp_path, sender)
    with pytest.raises(ValueError, match="email sender"):
        SmtpEmailSender("127.0.0.1", 25, sender)


# --- outbox -----------------------------------------------------------------------------------


async def test_outbox_writes_one_json_line_per_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = tmp_path / "data" / "outbox"
    sender = OutboxEmailSender(outbox, SENDER)
    caplog.set_level(logging.INFO, logger="faregate.notify")
    before = datetime.now().astimezone()

    await sender.send(EmailMessage("alice@example.com", "Verify", f"Open {SECRET_LINK}"))
    await sender.send(EmailMessage("bob@example.com", "Hé ✓", "plain", html="<b>rich</b>"))

    lines = (outbox / "email.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"id", "at", "from", "to", "subject", "text", "html"}
    assert first["from"] == SENDER
    assert first["to"] == "alice@example.com"
    assert first["subject"] == "Verify"
    assert first["text"] == f"Open {SECRET_LINK}"
    assert first["html"] is None
    assert second["subject"] == "Hé ✓"
    assert second["html"] == "<b>rich</b>"
    assert first["id"] != second["id"]
    at = datetime.fromisoformat(first["at"])
    assert at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= at <= datetime.now().astimezone()

    assert read_outbox(outbox) == [first, second]

    logged = [r.getMessage() for r in caplog.records if r.name == "faregate.notify"]
    assert logged == ["email to alice@example.com: Verify", "email to bob@example.com: Hé ✓"]
    assert "SECRET123" not in caplog.text
    assert "rich" not in caplog.text


async def test_outbox_modes(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    old_umask = os.umask(0o022)  # a typical, permissive umask must not widen the modes
    try:
        await OutboxEmailSender(outbox, SENDER).send(EmailMessage("a@b.test", "s", "t"))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o700
    assert stat.S_IMODE((outbox / "email.jsonl").stat().st_mode) == 0o600


def test_read_outbox_when_empty(tmp_path: Path) -> None:
    assert read_outbox(tmp_path / "missing") == []


async def test_outbox_concurrent_threads(tmp_path: Path) -> None:
    sender = OutboxEmailSender(tmp_path, SENDER)
    body = "x" * 20_000
    await asyncio.gather(
        *(sender.send(EmailMessage(f"u{i}@example.com", f"m{i}", body)) for i in range(100))
    )
    records = _strict_lines(tmp_path / "email.jsonl")
    assert sorted(r["subject"] for r in records) == sorted(f"m{i}" for i in range(100))
    assert all(r["text"] == body for r in records)


def _send_many(outbox: str, worker: int, count: int) -> None:
    async def run() -> None:
        sender = OutboxEmailSender(Path(outbox), SENDER)
        for i in range(count):
            # Big lines (well over PIPE_BUF and a page) make interleaving visible if it happens.
            body = f"{worker}:{i}:" + "y" * (5_000 + 97 * i)
            await sender.send(EmailMessage(f"w{worker}@example.com", f"{worker}-{i}", body))

    asyncio.run(run())


def test_outbox_concurrent_processes(tmp_path: Path) -> None:
    workers, per_worker = 4, 50
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_send_many, args=(str(tmp_path), w, per_worker)) for w in range(workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    records = _strict_lines(tmp_path / "email.jsonl")
    assert len(records) == workers * per_worker
    expected = {f"{w}-{i}" for w in range(workers) for i in range(per_worker)}
    assert {r["subject"] for r in records} == expected
    for r in records:
        w, i = str(r["subject"]).split("-")
        assert r["text"] == f"{w}:{i}:" + "y" * (5_000 + 97 * int(i))
        assert r["to"] == f"w{w}@example.com"


def _strict_lines(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    records = [json.loads(line) for line in raw.split(b"\n")[:-1]]
    assert all(isinstance(r, dict) for r in records)
    return records


# --- factory ----------------------------------------------------------------------------------


def test_factory_outbox(tmp_path: Path) -> None:
    sender = email_sender_from("outbox", data_dir=tmp_path, sender=SENDER)
    assert isinstance(sender, OutboxEmailSender)
    assert sender.outbox_dir == tmp_path / "outbox"


def test_factory_smtp(tmp_path: Path) -> None:
    sender = email_sender_from(
        "smtp",
        data_dir=tmp_path,
        sender=SENDER,
        smtp_host="mail.test",
        smtp_port=587,
        smtp_username="u",
        smtp_password="hunter2-secret",
        smtp_starttls=True,
    )
    assert isinstance(sender, SmtpEmailSender)
    assert (sender.host, sender.port, sender.username) == ("mail.test", 587, "u")
    assert sender.starttls and not sender.ssl
    assert "hunter2" not in repr(sender)
    implicit = email_sender_from(
        "smtp", data_dir=tmp_path, sender=SENDER, smtp_host="mail.test", smtp_port=465
    )
    assert isinstance(implicit, SmtpEmailSender) and implicit.ssl


@pytest.mark.parametrize("kind", ["", "sendmail", "SMTP "])
def test_factory_unknown_kind(tmp_path: Path, kind: str) -> None:
    with pytest.raises(ValueError, match="unknown email sender"):
        email_sender_from(kind, data_dir=tmp_path, sender=SENDER)


def test_factory_smtp_needs_host(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="host"):
        email_sender_from("smtp", data_dir=tmp_path, sender=SENDER)


# --- SMTP against a real server on loopback ---------------------------------------------------


class RecordingHandler:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, RecordingHandler]]:
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"gate"
    ok = ok and auth_data.password == b"s3cret-pw"
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_auth_server() -> Iterator[tuple[Controller, RecordingHandler]]:
    handler = RecordingHandler()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=_free_port(),
        authenticator=_authenticator,
        auth_required=True,
        auth_require_tls=False,  # loopback only; TLS would need a trusted certificate
    )
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


def _parse(envelope: Any) -> email.message.EmailMessage:
    msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n")  # SMTP carries CRLF line ends


async def test_smtp_delivers_text_and_html(
    smtp_server: tuple[Controller, RecordingHandler], caplog: pytest.LogCaptureFixture
) -> None:
    controller, handler = smtp_server
    caplog.set_level(logging.INFO, logger="faregate.notify")
    sender = SmtpEmailSender("127.0.0.1", controller.port, SENDER, timeout_s=5)

    await sender.send(
        EmailMessage(
            "alice@example.com",
            "Vérifiez votre adresse",
            f"Open {SECRET_LINK}\n",
            html=f'<p><a href="{SECRET_LINK}">Verify</a></p>',
        )
    )

    assert len(handler.envelopes) == 1
    envelope = handler.envelopes[0]
    assert envelope.mail_from == "noreply@faregate.test"
    assert envelope.rcpt_tos == ["alice@example.com"]
    msg = _parse(envelope)
    assert msg["From"] == SENDER
    assert msg["To"] == "alice@example.com"
    assert msg["Subject"] == "Vérifiez votre adresse"
    assert msg["Message-ID"].endswith("@faregate.test>")
    assert msg["Date"]
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    assert _lf(text.get_content()) == f"Open {SECRET_LINK}\n"
    assert f'href="{SECRET_LINK}"' in html.get_content()
    assert "email to alice@example.com: Vérifiez votre adresse" in caplog.text
    assert "SECRET123" not in caplog.text


async def test_smtp_text_only(smtp_server: tuple[Controller, RecordingHandler]) -> None:
    controller, handler = smtp_server
    sender = SmtpEmailSender("127.0.0.1", controller.port, "noreply@faregate.test")
    await sender.send(EmailMessage("bob@example.com", "Plain", "just text\n"))
    msg = _parse(handler.envelopes[0])
    assert msg.get_content_type() == "text/plain"
    assert _lf(msg.get_content()) == "just text\n"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_smtp_auth(smtp_auth_server: tuple[Controller, RecordingHandler]) -> None:
    controller, handler = smtp_auth_server
    good = SmtpEmailSender(
        "127.0.0.1", controller.port, SENDER, username="gate", password="s3cret-pw"
    )
    await good.send(EmailMessage("alice@example.com", "Authed", "hello"))
    assert [e.rcpt_tos for e in handler.envelopes] == [["alice@example.com"]]

    bad = SmtpEmailSender(
        "127.0.0.1", controller.port, SENDER, username="gate", password="wrong-pw-XYZ"
    )
    with pytest.raises(EmailDeliveryError) as info:
        await bad.send(EmailMessage("alice@example.com", "Nope", "hello"))
    assert "wrong-pw-XYZ" not in str(info.value)
    assert info.value.__cause__ is None
    assert "alice@example.com" in str(info.value)

    anonymous = SmtpEmailSender("127.0.0.1", controller.port, SENDER)
    with pytest.raises(EmailDeliveryError):
        await anonymous.send(EmailMessage("alice@example.com", "Nope", "hello"))
    assert len(handler.envelopes) == 1


async def test_smtp_starttls_unsupported_is_a_delivery_error(
    smtp_server: tuple[Controller, RecordingHandler],
) -> None:
    controller, handler = smtp_server
    sender = SmtpEmailSender("127.0.0.1", controller.port, SENDER, starttls=True)
    with pytest.raises(EmailDeliveryError, match=r"(?i)starttls"):
        await sender.send(EmailMessage("alice@example.com", "TLS", "hello"))
    assert handler.envelopes == []


async def test_smtp_connection_refused_fails_fast() -> None:
    port = _free_port()  # bound then closed: nothing listens there
    sender = SmtpEmailSender("127.0.0.1", port, SENDER, timeout_s=5)
    started = time.monotonic()
    with pytest.raises(EmailDeliveryError, match=re.escape(f"127.0.0.1:{port}")) as info:
        await sender.send(EmailMessage("alice@example.com", "Hi", "hello"))
    assert time.monotonic() - started < 2
    assert "Connection" in str(info.value) or "refused" in str(info.value)


def test_smtp_config_errors() -> None:
    with pytest.raises(ValueError, match="not both"):
        SmtpEmailSender("h", 465, SENDER, starttls=True, ssl=True)
    with pytest.raises(ValueError, match="host"):
        SmtpEmailSender("", 25, SENDER)
    with pytest.raises(ValueError, match="username"):
        SmtpEmailSender("h", 25, SENDER, password="pw")
