"""With FAREGATE_EMAIL_SENDER=smtp, the running server sends its emails (here: the sign-up
verification link) to a real SMTP server (aiosmtpd on loopback), and none to the outbox."""

from __future__ import annotations

import re
import time
from email import message_from_bytes
from email.message import Message

from tests.e2e.api_client import ApiClient, outbox
from tests.harness import Deployment


def _text(msg: Message) -> str:
    parts = msg.walk() if msg.is_multipart() else [msg]
    return "".join(str(p.get_payload(decode=True), "utf-8") for p in parts
                   if p.get_content_type() == "text/plain")


def test_signup_email_goes_out_by_smtp(sqlite_dep: Deployment, smtp_server: object) -> None:
    controller, handler = smtp_server  # type: ignore[misc]
    server = sqlite_dep.start_server(
        FAREGATE_EMAIL_SENDER="smtp", FAREGATE_SMTP_HOST="127.0.0.1",
        FAREGATE_SMTP_PORT=str(controller.port), FAREGATE_SMTP_STARTTLS="false",
        FAREGATE_EMAIL_FROM="Faregate <billing@faregate.example.com>")
    web = ApiClient(server.base_url)
    web.signup("smtp-user@example.com", "a long enough passphrase 3")
    deadline = time.monotonic() + 10
    while not handler.envelopes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(handler.envelopes) == 1
    envelope = handler.envelopes[0]
    assert envelope.rcpt_tos == ["smtp-user@example.com"]
    assert envelope.mail_from == "billing@faregate.example.com"
    msg = message_from_bytes(envelope.original_content)
    token = re.search(r"/verify-email\?token=([A-Za-z0-9_\-]+)", _text(msg))
    assert token is not None
    assert web.post("/api/auth/verify-email", {"token": token.group(1)}).status_code == 200
    assert outbox(sqlite_dep.data_dir, "email") == []
