"""``POST /v1/completions`` (legacy text completions)."""

from __future__ import annotations

from typing import Any

from faregate.devmodel.asgi import send_json
from faregate.devmodel.call import SYSTEM_FINGERPRINT, Call, completion_usage, new_id
from faregate.devmodel.errors import invalid_value
from faregate.devmodel.params import include_usage, opt_bool, opt_int, stop_sequences
from faregate.devmodel.prompts import completion_prompts
from faregate.devmodel.streaming import Chunk, stream_generations
from faregate.devmodel.textgen import Generation, generate

DEFAULT_MAX_TOKENS = 16
MAX_N = 128


class TextChunks:
    """Chunk shapes of streamed ``text_completion`` objects."""

    def __init__(self, call: Call, with_usage: bool) -> None:
        self._base: dict[str, Any] = {
            "id": new_id("cmpl-"),
            "object": "text_completion",
            "created": call.created,
            "model": call.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        self._with_usage = with_usage

    def _choice(self, index: int, text: str, reason: str | None) -> Chunk:
        choice = {"text": text, "index": index, "logprobs": None, "finish_reason": reason}
        chunk = {**self._base, "choices": [choice]}
        if self._with_usage:
            chunk["usage"] = None
        return chunk

    def opening(self, index: int) -> Chunk | None:
        return None

    def piece(self, index: int, text: str) -> Chunk:
        return self._choice(index, text, None)

    def closing(self, index: int, finish_reason: str) -> Chunk:
        return self._choice(index, "", finish_reason)

    def usage(self, usage: dict[str, Any]) -> Chunk:
        return {**self._base, "choices": [], "usage": usage}


async def handle_completions(body: dict[str, Any], call: Call) -> None:
    prompts = completion_prompts(body)
    n = opt_int(body, "n", minimum=1, maximum=MAX_N) or 1
    if n * len(prompts) > MAX_N:
        raise invalid_value("n", f"n times the number of prompts must be at most {MAX_N}.")
    limit = opt_int(body, "max_tokens", minimum=1) or DEFAULT_MAX_TOKENS
    stop = stop_sequences(body)
    stream = opt_bool(body, "stream")
    wants_usage = include_usage(body) if stream else False
    generations: list[Generation] = [
        generate(p.seed_text, j, limit=limit, overshoot=call.options.overshoot, stop=stop)
        for p in prompts
        for j in range(n)
    ]
    usage = completion_usage(sum(p.tokens for p in prompts), sum(g.tokens for g in generations))
    if stream:
        send_usage = wants_usage and not call.options.no_usage
        chunks = TextChunks(call, with_usage=send_usage)
        await stream_generations(call, generations, chunks, usage if send_usage else None)
        return
    await call.pace(max(g.tokens for g in generations))
    await send_json(
        call.send,
        200,
        {
            "id": new_id("cmpl-"),
            "object": "text_completion",
            "created": call.created,
            "model": call.model,
            "choices": [
                {"text": g.text, "index": i, "logprobs": None, "finish_reason": g.finish_reason}
                for i, g in enumerate(generations)
            ],
            "usage": usage,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        },
    )
