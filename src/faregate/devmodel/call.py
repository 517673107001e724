"""Per-request context shared by the endpoint handlers, plus common payload pieces."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive, Send

from faregate.devmodel.options import ModelOptions

SYSTEM_FINGERPRINT = "fp_faregate_dev"


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


@dataclass(slots=True)
class Call:
    send: Send
    receive: Receive
    model: str
    options: ModelOptions
    latency_s: float
    created: int = field(default_factory=lambda: int(time.time()))

    async def pace(self, steps: int) -> None:
        """Non-streaming answers wait as long as streaming the same pieces would."""
        if self.latency_s > 0 and steps > 0:
            await asyncio.sleep(self.latency_s * steps)


def completion_usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
