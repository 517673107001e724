from __future__ import annotations

import base64
import json
import logging
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from faregate.phone.sms import (
    OutboxSmsSender,
    SmsDeliveryError,
    TwilioSmsSender,
    sms_sender_from,
)

CODE_TEXT = "Your Faregate code is 482913"
TO = "+8613812345678"
MASKED = "+86138****5678"
SID = "AC" + "0123456789abcdef" * 2
TOKEN = "test-auth-token-5f2d"
FROM = "+15005550006"


def _all_logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


# --- outbox ---


async def test_outbox_appends_json_lines_with_private_modes(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    sender = OutboxSmsSender(outbox)
    await sender.send(TO, CODE_TEXT)
    await sender.send("+447400123456", "second\nline ✓")

    assert stat.S_IMODE(outbox.stat().st_mode) == 0o700
    path = outbox / "sms.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text("utf-8").splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"id", "at", "to", "text"}
    assert first["to"] == TO and first["text"] == CODE_TEXT
    assert second["to"] == "+447400123456" and second["text"] == "second\nline ✓"
    assert first["id"].startswith("sms_") and first["id"] != second["id"]
    assert datetime.fromisoformat(first["at"]).utcoffset() is not None
    assert first["at"].endswith("+00:00")


async def test_outbox_tightens_an_existing_loose_file(tmp_path: Path) -> None:
    path = tmp_path / "sms.jsonl"
    path.write_text("")
    os.chmod(path, 0o644)
    await OutboxSmsSender(tmp_path).send(TO, CODE_TEXT)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_outbox_logs_masked_number_never_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await OutboxSmsSender(tmp_path).send(TO, CODE_TEXT)
    logged = _all_logged(caplog)
    assert f"sms to {MASKED}" in logged
    assert "482913" not in logged
    assert TO not in logged


async def test_outbox_refuses_non_e164(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        await OutboxSmsSender(tmp_path).send("138 1234 5678", CODE_TEXT)
    assert not (tmp_path / "sms.jsonl").exists()


# --- twilio, against a loopback HTTP server ---


@dataclass
class FakeTwilio:
    base_url: str
    requests: list[dict[str, object]] = field(default_factory=list)
    status: int = 201


_MESSAGE_RESOURCE: dict[str, object] = {
    "account_sid": SID,
    "api_version": "2010-04-01",
    "body": "(echoed body)",
    "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
    "date_sent": None,
    "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
    "direction": "outbound-api",
    "error_code": None,
    "error_message": None,
    "from": FROM,
    "messaging_service_sid": None,
    "num_media": "0",
    "num_segments": "1",
    "price": None,
    "price_unit": "USD",
    "sid": "SM" + "f" * 32,
    "status": "queued",
    "subresource_uris": {},
    "to": TO,
    "uri": f"/2010-04-01/Accounts/{SID}/Messages/SM{'f' * 32}.json",
}

_ERROR_RESOURCE = {
    "code": 21211,
    "message": "The 'To' number is not a valid phone number.",
    "more_info": "https://www.twilio.com/docs/errors/21211",
    "status": 400,
}


@pytest.fixture
def fake_twilio(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTwilio]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    state: FakeTwilio

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode()
            state.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "authorization": self.headers.get("Authorization", ""),
                    "content_type": self.headers.get("Content-Type", ""),
                    "form": parse_qs(body, keep_blank_values=True),
                }
            )
            payload = _MESSAGE_RESOURCE if state.status < 400 else _ERROR_RESOURCE
            data = json.dumps(payload).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = FakeTwilio(base_url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_twilio_posts_the_messages_api(
    fake_twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sender = TwilioSmsSender(SID, TOKEN, FROM, base_url=fake_twilio.base_url)
    await sender.send(TO, CODE_TEXT)

    assert len(fake_twilio.requests) == 1
    request = fake_twilio.requests[0]
    assert request["method"] == "POST"
    assert request["path"] == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request["content_type"] == "application/x-www-form-urlencoded"
    assert request["form"] == {"To": [TO], "From": [FROM], "Body": [CODE_TEXT]}
    expected_auth = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert request["authorization"] == f"Basic {expected_auth}"

    logged = _all_logged(caplog)  # includes the SDK's own "twilio.http_client" logger
    assert f"sms to {MASKED} via twilio" in logged
    assert "482913" not in logged
    assert TOKEN not in logged
    assert expected_auth not in logged


async def test_twilio_error_becomes_sms_delivery_error(
    fake_twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_twilio.status = 400
    sender = TwilioSmsSender(SID, TOKEN, FROM, base_url=fake_twilio.base_url)
    with pytest.raises(SmsDeliveryError) as info:
        await sender.send(TO, CODE_TEXT)
    assert info.value.status == 400
    assert info.value.code == 21211
    assert "482913" not in str(info.value)
    assert len(fake_twilio.requests) == 1
    logged = _all_logged(caplog)
    assert MASKED in logged
    assert "482913" not in logged
    assert TOKEN not in logged


async def test_twilio_unreachable_becomes_sms_delivery_error(fake_twilio: FakeTwilio) -> None:
    # A port nothing listens on: bind, read the port, close.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sender = TwilioSmsSender(SID, TOKEN, FROM, base_url=f"http://127.0.0.1:{port}", timeout_s=2)
    with pytest.raises(SmsDeliveryError, match="could not be reached"):
        await sender.send(TO, CODE_TEXT)


def test_twilio_ignores_edge_and_region_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    sender = TwilioSmsSender(SID, TOKEN, FROM, base_url="http://127.0.0.1:9")
    client = sender._client
    assert client.edge is None and client.region is None


# --- factory ---


def test_factory(tmp_path: Path) -> None:
    assert isinstance(sms_sender_from(outbox_dir=tmp_path), OutboxSmsSender)
    twilio = sms_sender_from(
        "twilio", twilio_account_sid=SID, twilio_auth_token=TOKEN, twilio_from=FROM
    )
    assert isinstance(twilio, TwilioSmsSender)
    with pytest.raises(ValueError, match="outbox_dir"):
        sms_sender_from("outbox")
    with pytest.raises(ValueError, match="twilio_auth_token"):
        sms_sender_from("twilio", twilio_account_sid=SID, twilio_from=FROM)
    with pytest.raises(ValueError, match="unknown SMS sender"):
        sms_sender_from("carrier-pigeon")  # type: ignore[arg-type]
