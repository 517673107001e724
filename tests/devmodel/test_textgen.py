"""Unit rules of text generation and token counting."""

from __future__ import annotations

from faregate.devmodel.textgen import (
    MAX_PIECES,
    MIN_PIECES,
    Generation,
    apply_stop,
    chat_prompt_tokens,
    generate,
    text_tokens,
)


def test_natural_lengths_span_the_range() -> None:
    lengths = {generate(f"prompt {i}").tokens for i in range(400)}
    assert min(lengths) == MIN_PIECES
    assert max(lengths) == MAX_PIECES


def test_limit_gives_a_prefix() -> None:
    full = generate("abc", 1)
    cut = generate("abc", 1, limit=4)
    assert cut.pieces == (*full.pieces[:3], full.pieces[3].rstrip("."))
    assert cut.finish_reason == "length"
    assert generate("abc", 1, limit=full.tokens) == full


def test_overshoot_applies_only_with_a_limit() -> None:
    assert generate("abc", limit=100, overshoot=3).tokens == 103
    assert generate("abc", overshoot=3) == generate("abc")


def test_stop_across_pieces() -> None:
    gen = Generation(("Alpha", " beta", " gamma"), "stop")
    assert apply_stop(gen, ["a be"]).pieces == ("Alph",)
    assert apply_stop(gen, ["ta g"]).pieces == ("Alpha", " be")
    assert apply_stop(gen, [" beta"]).pieces == ("Alpha",)
    assert apply_stop(gen, ["Alpha"]).pieces == ()
    assert apply_stop(gen, ["zzz"]) == gen


def test_token_counting() -> None:
    assert text_tokens("") == 0
    assert text_tokens("abcd") == 1
    assert text_tokens("abcde") == 2
    assert text_tokens("é") == 1  # two UTF-8 bytes
    assert chat_prompt_tokens([]) == 1
    assert chat_prompt_tokens(["", "abcdefgh"]) == 3 + 5
