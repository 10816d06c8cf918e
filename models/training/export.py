"""Writers for the two files the rest of Heliomesh reads: the llama2.c version-0 .bin
checkpoint and the heliomesh-char vocabulary (charvocab.json)."""

import json
import struct

import numpy as np

from model import Transformer, rope_tables

CHARVOCAB_SPECIALS = 3  # unk = 0, bos = 1, eos = 2; chars[i] has id i + 3


def write_charvocab(path: str, chars: list) -> None:
    doc = {"kind": "heliomesh-char", "version": 1, "unk": 0, "bos": 1, "eos": 2, "chars": chars}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
        f.write("\n")


def write_llama2c(path: str, model: Transformer) -> None:
    """llama2.c's legacy (version 0) layout: a header of 7 int32, then float32 arrays in
    run.c's read order. A positive vocab_size says the classifier is the embedding."""
    cfg = model.cfg
    layers = model.layers

    def f32(t):
        return t.detach().cpu().float().numpy().astype("<f4").tobytes()

    with open(path, "wb") as f:
        f.write(struct.pack("<7i", cfg.dim, cfg.hidden_dim, cfg.n_layers, cfg.n_heads,
                            cfg.n_kv_heads, cfg.vocab_size, cfg.seq_len))
        f.write(f32(model.tok_embeddings.weight))
        for group in (
            [l.attention_norm.weight for l in layers],
            [l.attention.wq.weight for l in layers],
            [l.attention.wk.weight for l in layers],
            [l.attention.wv.weight for l in layers],
            [l.attention.wo.weight for l in layers],
            [l.ffn_norm.weight for l in layers],
            [l.feed_forward.w1.weight for l in layers],
            [l.feed_forward.w2.weight for l in layers],
            [l.feed_forward.w3.weight for l in layers],
        ):
            for w in group:
                f.write(f32(w))
        f.write(f32(model.norm.weight))
        # Readers skip these, but the layout carries them: [seq_len][head_size/2] each.
        cos, sin = rope_tables(cfg.head_size, cfg.seq_len)
        f.write(f32(cos))
        f.write(f32(sin))


def llama2c_size_bytes(model: Transformer) -> int:
    cfg = model.cfg
    weights = sum(p.numel() for p in model.parameters())
    rope = 2 * cfg.seq_len * (cfg.head_size // 2)
    return 7 * 4 + 4 * (weights + rope)


def as_numpy(model: Transformer) -> dict:
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
