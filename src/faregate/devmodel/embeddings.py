"""``POST /v1/embeddings``: deterministic unit-norm vectors derived from SHA-256.

Each input's vector: SHA-256 of the input (UTF-8 text, or ``tokens:1,2,3`` for token
ids) seeds SHA-256 in counter mode; the 32-bit words, mapped to [-1, 1) and normalised,
are rounded to float32, so ``float`` and ``base64`` (little-endian float32) carry
exactly the same numbers. Prompt tokens: ``ceil(utf8_bytes / 4)`` per text (at least
1), one per token id.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from functools import lru_cache
from typing import Any

from faregate.devmodel.asgi import send_json
from faregate.devmodel.call import Call
from faregate.devmodel.errors import invalid_value
from faregate.devmodel.params import opt_choice, opt_int
from faregate.devmodel.prompts import strings_or_tokens
from faregate.devmodel.textgen import text_tokens

DEFAULT_DIMENSIONS = 64
MAX_DIMENSIONS = 3072
MAX_INPUTS = 2048


@lru_cache(maxsize=4096)
def embedding_bytes(data: bytes, dimensions: int) -> bytes:
    """The vector for ``data`` as little-endian float32 bytes."""
    seed = hashlib.sha256(data).digest()
    blocks = (dimensions + 7) // 8
    stream = b"".join(
        hashlib.sha256(seed + block.to_bytes(4, "little")).digest() for block in range(blocks)
    )
    words = struct.unpack(f"<{dimensions}I", stream[: dimensions * 4])
    values = [word / 2147483648.0 - 1.0 for word in words]
    norm = math.sqrt(math.fsum(v * v for v in values)) or 1.0
    return struct.pack(f"<{dimensions}f", *(v / norm for v in values))


def embedding_floats(data: bytes, dimensions: int) -> list[float]:
    packed = embedding_bytes(data, dimensions)
    return list(struct.unpack(f"<{dimensions}f", packed))


async def handle_embeddings(body: dict[str, Any], call: Call) -> None:
    items = strings_or_tokens(body.get("input"), "input")
    if len(items) > MAX_INPUTS:
        raise invalid_value("input", f"at most {MAX_INPUTS} inputs are allowed.")
    dimensions = opt_int(body, "dimensions", minimum=1, maximum=MAX_DIMENSIONS)
    dims = dimensions or DEFAULT_DIMENSIONS
    encoding = opt_choice(body, "encoding_format", ("float", "base64")) or "float"
    data: list[dict[str, Any]] = []
    prompt_tokens = 0
    for index, item in enumerate(items):
        if isinstance(item, str):
            if not item:
                raise invalid_value(f"input[{index}]", "must not be an empty string.")
            raw = item.encode()
            prompt_tokens += max(1, text_tokens(item))
        else:
            raw = ("tokens:" + ",".join(map(str, item))).encode()
            prompt_tokens += len(item)
        vector: Any = (
            base64.b64encode(embedding_bytes(raw, dims)).decode()
            if encoding == "base64"
            else embedding_floats(raw, dims)
        )
        data.append({"object": "embedding", "index": index, "embedding": vector})
    await send_json(
        call.send,
        200,
        {
            "object": "list",
            "data": data,
            "model": call.model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        },
    )
