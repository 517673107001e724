#!/usr/bin/env python3
"""Write a tiny random-weights llama model in GGUF format, for integration tests.

Usage: python scripts/make_tiny_gguf.py OUT.gguf

Needs the ``gguf`` (0.19.0) and ``numpy`` packages. The model is a 2-layer llama
(n_embd 64, 4 heads, feed-forward 128, context 512) with an SPM vocabulary of
unk/bos/eos, the 256 byte-fallback tokens and a few words, plus a simple Jinja chat
template. Weights come from a fixed numpy seed, so the output is deterministic.
Its output is gibberish: tests must assert on shape and usage, never on content.
"""

from __future__ import annotations

import sys
from pathlib import Path

import gguf
import numpy as np

SEED = 20240601
N_CTX = 512
N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_FF = 128

WORDS = [
    "▁",
    "▁the",
    "▁a",
    "▁to",
    "▁and",
    "▁of",
    "▁is",
    "▁hello",
    "▁world",
    "▁user",
    "▁assistant",
    "▁system",
    "▁say",
    "▁count",
    "▁one",
    "▁two",
    "▁three",
    "e",
    "t",
    "a",
    "o",
    "n",
    "s",
    ".",
]

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_vocab() -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>"]
    scores = [0.0, 0.0, 0.0]
    types = [
        gguf.TokenType.UNKNOWN,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
    ]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        scores.append(0.0)
        types.append(gguf.TokenType.BYTE)
    for i, word in enumerate(WORDS):
        tokens.append(word)
        scores.append(-float(i + 1))
        types.append(gguf.TokenType.NORMAL)
    assert len(set(tokens)) == len(tokens)
    return tokens, scores, [int(t) for t in types]


def write_model(out: Path) -> None:
    rng = np.random.default_rng(SEED)
    tokens, scores, types = build_vocab()
    n_vocab = len(tokens)

    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones((n,), dtype=np.float32)

    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name("faregate-tiny-llama")
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)

    # numpy shapes are the reverse of ggml's ne: (rows, cols) = (out_features, in_features).
    w.add_tensor("token_embd.weight", rand(n_vocab, N_EMBD))
    for i in range(N_LAYER):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", ones(N_EMBD))
        w.add_tensor(p + "attn_q.weight", rand(N_EMBD, N_EMBD))
        w.add_tensor(p + "attn_k.weight", rand(N_EMBD, N_EMBD))
        w.add_tensor(p + "attn_v.weight", rand(N_EMBD, N_EMBD))
        w.add_tensor(p + "attn_output.weight", rand(N_EMBD, N_EMBD))
        w.add_tensor(p + "ffn_norm.weight", ones(N_EMBD))
        w.add_tensor(p + "ffn_gate.weight", rand(N_FF, N_EMBD))
        w.add_tensor(p + "ffn_up.weight", rand(N_FF, N_EMBD))
        w.add_tensor(p + "ffn_down.weight", rand(N_EMBD, N_FF))
    w.add_tensor("output_norm.weight", ones(N_EMBD))
    w.add_tensor("output.weight", rand(n_vocab, N_EMBD))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    write_model(tmp)
    tmp.replace(out)  # atomic: a half-written model is never left at OUT
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
