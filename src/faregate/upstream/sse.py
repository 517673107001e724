"""Server-sent events, split incrementally from a byte stream."""

from __future__ import annotations

from collections.abc import AsyncIterator


async def iter_event_batches(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    """For each read from the network, the `data` payloads of the events it completed
    (multi-line data joined by \\n), so that they can be relayed in one write.

    Events without data (comments, keep-alives) are skipped. Tolerates \\r\\n line endings."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        batch: list[bytes] = []
        while True:
            end = buffer.find(b"\n\n")
            if end < 0:
                break
            raw, buffer = buffer[:end], buffer[end + 2:]
            data = _data_of(raw)
            if data is not None:
                batch.append(data)
        if batch:
            yield batch
    if buffer.strip():
        data = _data_of(buffer)
        if data is not None:
            yield [data]


def _data_of(raw: bytes) -> bytes | None:
    if raw.startswith(b"data:") and b"\n" not in raw:  # the common one-line event
        return raw[6:] if raw[5:6] == b" " else raw[5:]
    parts = []
    for line in raw.split(b"\n"):
        if line.startswith(b"data:"):
            parts.append(line[6:] if line[5:6] == b" " else line[5:])
    return b"\n".join(parts) if parts else None


def encode_event(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"
