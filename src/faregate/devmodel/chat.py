"""``POST /v1/chat/completions``."""

from __future__ import annotations

from typing import Any

from faregate.devmodel.asgi import send_json
from faregate.devmodel.call import SYSTEM_FINGERPRINT, Call, completion_usage, new_id
from faregate.devmodel.params import include_usage, opt_bool, opt_int, stop_sequences
from faregate.devmodel.prompts import chat_prompt
from faregate.devmodel.streaming import Chunk, stream_generations
from faregate.devmodel.textgen import generate

MAX_N = 128


class ChatChunks:
    """Chunk shapes of ``chat.completion.chunk`` (``usage: null`` only when usage is asked)."""

    def __init__(self, call: Call, with_usage: bool) -> None:
        self._base: dict[str, Any] = {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": call.created,
            "model": call.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        self._with_usage = with_usage

    def _chunk(self, choices: list[dict[str, Any]]) -> Chunk:
        chunk = {**self._base, "choices": choices}
        if self._with_usage:
            chunk["usage"] = None
        return chunk

    def _choice(self, index: int, delta: dict[str, Any], reason: str | None) -> Chunk:
        return self._chunk(
            [{"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}]
        )

    def opening(self, index: int) -> Chunk:
        return self._choice(index, {"role": "assistant", "content": "", "refusal": None}, None)

    def piece(self, index: int, text: str) -> Chunk:
        return self._choice(index, {"content": text}, None)

    def closing(self, index: int, finish_reason: str) -> Chunk:
        return self._choice(index, {}, finish_reason)

    def usage(self, usage: dict[str, Any]) -> Chunk:
        return {**self._base, "choices": [], "usage": usage}


async def handle_chat(body: dict[str, Any], call: Call) -> None:
    prompt = chat_prompt(body)
    n = opt_int(body, "n", minimum=1, maximum=MAX_N) or 1
    max_tokens = opt_int(body, "max_tokens", minimum=1)
    limit = opt_int(body, "max_completion_tokens", minimum=1) or max_tokens
    stop = stop_sequences(body)
    stream = opt_bool(body, "stream")
    wants_usage = include_usage(body) if stream else False
    generations = [
        generate(prompt.seed_text, i, limit=limit, overshoot=call.options.overshoot, stop=stop)
        for i in range(n)
    ]
    usage = completion_usage(prompt.tokens, sum(g.tokens for g in generations))
    if stream:
        send_usage = wants_usage and not call.options.no_usage
        chunks = ChatChunks(call, with_usage=send_usage)
        await stream_generations(call, generations, chunks, usage if send_usage else None)
        return
    await call.pace(max(g.tokens for g in generations))
    await send_json(
        call.send,
        200,
        {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": call.created,
            "model": call.model,
            "choices": [
                {
                    "index": i,
                    "message": {
                        "role": "assistant",
                        "content": g.text,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": g.finish_reason,
                }
                for i, g in enumerate(generations)
            ],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        },
    )
