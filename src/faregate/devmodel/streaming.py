"""Streaming chat/text completions as SSE: one ASGI send per chunk."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from faregate.devmodel.asgi import SSEWriter
from faregate.devmodel.call import Call
from faregate.devmodel.errors import StreamAborted
from faregate.devmodel.textgen import Generation

Chunk = dict[str, Any]


class ChunkFormat(Protocol):
    def opening(self, index: int) -> Chunk | None: ...

    def piece(self, index: int, text: str) -> Chunk: ...

    def closing(self, index: int, finish_reason: str) -> Chunk: ...

    def usage(self, usage: dict[str, Any]) -> Chunk: ...


async def stream_generations(
    call: Call,
    generations: Sequence[Generation],
    fmt: ChunkFormat,
    usage: dict[str, Any] | None,
) -> None:
    """Stream the choices interleaved piece by piece, then finish chunks, usage, [DONE].

    ``usage`` is sent as a final ``choices: []`` chunk when not None. With the
    ``die_after=K`` option the stream is aborted (exception after headers were sent,
    so the server drops the connection) once K content chunks went out.
    """
    die_after = call.options.die_after
    writer = SSEWriter(call.send, call.receive)
    await writer.start()
    try:
        for index in range(len(generations)):
            opening = fmt.opening(index)
            if opening is not None:
                await writer.event(opening)
        sent = 0
        steps = max((g.tokens for g in generations), default=0)
        for step in range(steps):
            if call.latency_s > 0:
                await asyncio.sleep(call.latency_s)
            if writer.disconnected:
                return
            for index, generation in enumerate(generations):
                if step < generation.tokens:
                    if die_after is not None and sent >= die_after:
                        raise StreamAborted(f"die_after={die_after}")
                    await writer.event(fmt.piece(index, generation.pieces[step]))
                    sent += 1
        if die_after is not None:
            raise StreamAborted(f"die_after={die_after}")
        for index, generation in enumerate(generations):
            await writer.event(fmt.closing(index, generation.finish_reason))
        if usage is not None:
            await writer.event(fmt.usage(usage))
        await writer.done(marker=not call.options.no_done)
    finally:
        writer.close()
