"""Deterministic text generation and the token-counting rules.

Token rules (documented, deliberately simple):

* one completion token = one emitted *piece*: the first word, then each following
  word with its leading space (the final piece of a naturally ended text carries ".");
* the token count of a text is ``ceil(utf8_bytes / 4)``;
* chat prompt tokens = ``sum(ceil(utf8_bytes(message text) / 4) + 3)`` over messages,
  at least 1; a completions prompt given as a string counts ``ceil(bytes / 4)`` (at
  least 1), given as token ids counts one per id.

Text is a pure function of (prompt text, choice index): words are drawn from a fixed
vocabulary by a PRNG seeded with a BLAKE2b hash of both. The natural length is 8..40
pieces; a max-token limit truncates it (finish_reason "length"), so the limited text
is always a prefix of the unlimited one.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

FinishReason = Literal["stop", "length"]

MIN_PIECES = 8
MAX_PIECES = 40
PER_MESSAGE_TOKENS = 3

VOCABULARY: tuple[str, ...] = (
    "gate", "fare", "token", "ledger", "credit", "stream", "model", "prompt",
    "river", "stone", "light", "quiet", "bright", "signal", "answer", "window",
    "harbor", "meadow", "copper", "silver", "amber", "orbit", "thread", "lantern",
    "compass", "garden", "winter", "summer", "north", "south", "east", "west",
    "swift", "gentle", "steady", "simple", "honest", "exact", "clear", "small",
    "the", "a", "of", "and", "to", "in", "with", "for",
    "runs", "counts", "carries", "follows", "measures", "returns", "holds", "keeps",
    "every", "each", "some", "many", "one", "two", "three", "seven",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Generation:
    pieces: tuple[str, ...]
    finish_reason: FinishReason

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def tokens(self) -> int:
        return len(self.pieces)


def text_tokens(text: str) -> int:
    return (len(text.encode()) + 3) // 4


def chat_prompt_tokens(message_texts: Iterable[str]) -> int:
    return max(1, sum(text_tokens(text) + PER_MESSAGE_TOKENS for text in message_texts))


def _rng(seed_text: str, index: int) -> random.Random:
    digest = hashlib.blake2b(seed_text.encode(), digest_size=16, person=b"faregate-dev")
    digest.update(index.to_bytes(4, "little"))
    return random.Random(int.from_bytes(digest.digest(), "little"))


def generate(
    seed_text: str,
    index: int = 0,
    *,
    limit: int | None = None,
    overshoot: int = 0,
    stop: Sequence[str] = (),
) -> Generation:
    """Pieces for choice ``index`` of a prompt; see the module docstring for the rules.

    ``overshoot`` only applies when ``limit`` is given: exactly ``limit + overshoot``
    pieces are emitted and finish_reason is "length".
    """
    rng = _rng(seed_text, index)
    natural = rng.randint(MIN_PIECES, MAX_PIECES)
    count: int
    reason: FinishReason
    if limit is None:
        count, reason = natural, "stop"
    elif overshoot > 0:
        count, reason = limit + overshoot, "length"
    elif natural > limit:
        count, reason = limit, "length"
    else:
        count, reason = natural, "stop"
    words = [rng.choice(VOCABULARY) for _ in range(count)]
    pieces = [(" " + word) if i else word.capitalize() for i, word in enumerate(words)]
    if reason == "stop" and pieces:
        pieces[-1] += "."
    generation = Generation(tuple(pieces), reason)
    return apply_stop(generation, stop) if stop else generation


def apply_stop(generation: Generation, stop: Sequence[str]) -> Generation:
    """Cut the text before the first occurrence of any stop sequence."""
    text = ""
    for i, piece in enumerate(generation.pieces):
        candidate = text + piece
        hits = [
            pos
            for seq in stop
            if (pos := candidate.find(seq, max(0, len(text) - len(seq) + 1))) >= 0
        ]
        if hits:
            return Generation(_cut(generation.pieces[: i + 1], min(hits)), "stop")
        text = candidate
    return generation


def _cut(pieces: Sequence[str], at: int) -> tuple[str, ...]:
    kept: list[str] = []
    used = 0
    for piece in pieces:
        if used + len(piece) > at:
            if at > used:
                kept.append(piece[: at - used])
            break
        kept.append(piece)
        used += len(piece)
    return tuple(kept)
