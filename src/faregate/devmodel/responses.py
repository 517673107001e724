"""``POST /v1/responses``: a minimal but valid Responses API object, streamed or not.

Streams send the OpenAI event sequence (``response.created``, ``response.in_progress``,
``response.output_item.added``, ``response.content_part.added``, one
``response.output_text.delta`` per piece, ``response.output_text.done``,
``response.content_part.done``, ``response.output_item.done``) and end with
``response.completed`` — or ``response.incomplete`` with
``incomplete_details.reason = "max_output_tokens"`` when ``max_output_tokens`` cut the
text, as OpenAI does. There is no ``[DONE]`` marker in this API.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from faregate.devmodel.asgi import SSEWriter, send_json
from faregate.devmodel.call import Call, new_id
from faregate.devmodel.errors import StreamAborted
from faregate.devmodel.params import opt_bool, opt_int
from faregate.devmodel.prompts import responses_prompt
from faregate.devmodel.textgen import Generation, generate


def response_usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


class ResponseBuilder:
    def __init__(self, call: Call, body: dict[str, Any], limit: int | None) -> None:
        self.call = call
        self.response_id = new_id("resp_")
        self.item_id = new_id("msg_")
        instructions = body.get("instructions")
        self._base: dict[str, Any] = {
            "id": self.response_id,
            "object": "response",
            "created_at": call.created,
            "background": False,
            "error": None,
            "instructions": instructions if isinstance(instructions, str) else None,
            "max_output_tokens": limit,
            "max_tool_calls": None,
            "model": call.model,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": False,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto",
            "tools": [],
            "top_logprobs": 0,
            "top_p": 1.0,
            "truncation": "disabled",
            "user": None,
            "metadata": {},
        }

    @staticmethod
    def part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def item(self, status: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.item_id,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": parts,
        }

    def in_progress(self) -> dict[str, Any]:
        return {
            **self._base,
            "status": "in_progress",
            "incomplete_details": None,
            "output": [],
            "usage": None,
        }

    def final(self, generation: Generation, usage: dict[str, Any] | None) -> dict[str, Any]:
        complete = generation.finish_reason == "stop"
        status = "completed" if complete else "incomplete"
        return {
            **self._base,
            "status": status,
            "completed_at": int(time.time()) if complete else None,
            "incomplete_details": None if complete else {"reason": "max_output_tokens"},
            "output": [self.item(status, [self.part(generation.text)])],
            "usage": usage,
        }


async def handle_responses(body: dict[str, Any], call: Call) -> None:
    prompt = responses_prompt(body)
    limit = opt_int(body, "max_output_tokens", minimum=1)
    stream = opt_bool(body, "stream")
    generation = generate(prompt.seed_text, 0, limit=limit, overshoot=call.options.overshoot)
    usage = response_usage(prompt.tokens, generation.tokens)
    builder = ResponseBuilder(call, body, limit)
    if stream:
        await _stream(call, builder, generation, None if call.options.no_usage else usage)
        return
    await call.pace(generation.tokens)
    await send_json(call.send, 200, builder.final(generation, usage))


async def _stream(
    call: Call, builder: ResponseBuilder, generation: Generation, usage: dict[str, Any] | None
) -> None:
    writer = SSEWriter(call.send, call.receive)
    sequence = 0

    async def emit(kind: str, **fields: Any) -> None:
        nonlocal sequence
        await writer.event({"type": kind, "sequence_number": sequence, **fields}, name=kind)
        sequence += 1

    where = {"item_id": builder.item_id, "output_index": 0, "content_index": 0}
    die_after = call.options.die_after
    await writer.start()
    try:
        await emit("response.created", response=builder.in_progress())
        await emit("response.in_progress", response=builder.in_progress())
        added = builder.item("in_progress", [])
        await emit("response.output_item.added", output_index=0, item=added)
        await emit("response.content_part.added", **where, part=builder.part(""))
        for sent, piece in enumerate(generation.pieces):
            if call.latency_s > 0:
                await asyncio.sleep(call.latency_s)
            if writer.disconnected:
                return
            if die_after is not None and sent >= die_after:
                raise StreamAborted(f"die_after={die_after}")
            await emit("response.output_text.delta", **where, delta=piece, logprobs=[])
        if die_after is not None:
            raise StreamAborted(f"die_after={die_after}")
        final = builder.final(generation, usage)
        text = generation.text
        await emit("response.output_text.done", **where, text=text, logprobs=[])
        await emit("response.content_part.done", **where, part=builder.part(text))
        await emit("response.output_item.done", output_index=0, item=final["output"][0])
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        await emit(kind, response=final)
        await writer.done(marker=False)
    finally:
        writer.close()
