"""Check an exported llama2.c .bin against the PyTorch checkpoint it came from.

The .bin is reloaded with numpy alone, following run.c's read order, and a token-at-a-
time forward pass with a KV cache (the way run.c and our TF.js forward pass work) is
recomputed from those arrays; its logits must match the PyTorch model's on the same
prompt. A layout mistake (wrong order, transposed matrix, wrong RoPE pairing) shows up as
a large difference.

usage: check_export.py [--out models/training/out] [--name sotu-char]
"""

import argparse
import json
import os
import sys

import numpy as np

EPS = 1e-5
THETA = 10000.0


def read_llama2c(path):
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(28), dtype="<i4")
        data = np.frombuffer(f.read(), dtype="<f4")
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = (int(v) for v in header)
    shared = vocab > 0
    vocab = abs(vocab)
    hs = dim // n_heads
    kv_dim = n_kv * hs
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        arr = data[off:off + n].reshape(shape)
        off += n
        return arr

    w = {"emb": take(vocab, dim), "att_norm": take(n_layers, dim),
         "wq": take(n_layers, dim, dim), "wk": take(n_layers, kv_dim, dim),
         "wv": take(n_layers, kv_dim, dim), "wo": take(n_layers, dim, dim),
         "ffn_norm": take(n_layers, dim), "w1": take(n_layers, hidden, dim),
         "w2": take(n_layers, dim, hidden), "w3": take(n_layers, hidden, dim),
         "final_norm": take(dim)}
    take(seq_len, hs // 2)  # freq_cis_real, skipped as readers do
    take(seq_len, hs // 2)  # freq_cis_imag
    w["cls"] = w["emb"] if shared else take(vocab, dim)
    if off != data.size:
        raise SystemExit(f"{path}: {data.size - off} floats left over; layout mismatch")
    cfg = dict(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv=n_kv,
               vocab=vocab, seq_len=seq_len, shared=shared)
    return cfg, w


def rmsnorm(x, weight):
    return x / np.sqrt(np.mean(x * x) + EPS) * weight


def rope(x, pos, hs):
    # Interleaved pairs (x[2i], x[2i+1]) rotated by pos * theta^(-2i/hs), as in run.c.
    out = x.copy()
    for h in range(x.size // hs):
        for i in range(0, hs, 2):
            angle = pos * THETA ** (-i / hs)
            c, s = np.cos(angle), np.sin(angle)
            a, b = x[h * hs + i], x[h * hs + i + 1]
            out[h * hs + i] = a * c - b * s
            out[h * hs + i + 1] = a * s + b * c
    return out


def forward_numpy(cfg, w, tokens):
    """Logits after each token, computed one position at a time with a KV cache."""
    dim, hs = cfg["dim"], cfg["dim"] // cfg["n_heads"]
    rep = cfg["n_heads"] // cfg["n_kv"]
    k_cache = [[] for _ in range(cfg["n_layers"])]
    v_cache = [[] for _ in range(cfg["n_layers"])]
    all_logits = []
    for pos, tok in enumerate(tokens):
        x = w["emb"][tok].astype(np.float64)
        for l in range(cfg["n_layers"]):
            xb = rmsnorm(x, w["att_norm"][l])
            q = rope(w["wq"][l] @ xb, pos, hs)
            k_cache[l].append(rope(w["wk"][l] @ xb, pos, hs))
            v_cache[l].append(w["wv"][l] @ xb)
            keys, values = np.stack(k_cache[l]), np.stack(v_cache[l])
            att_out = np.zeros(dim)
            for h in range(cfg["n_heads"]):
                kv = h // rep
                qh = q[h * hs:(h + 1) * hs]
                scores = keys[:, kv * hs:(kv + 1) * hs] @ qh / np.sqrt(hs)
                p = np.exp(scores - scores.max())
                p /= p.sum()
                att_out[h * hs:(h + 1) * hs] = p @ values[:, kv * hs:(kv + 1) * hs]
            x = x + w["wo"][l] @ att_out
            xb = rmsnorm(x, w["ffn_norm"][l])
            g = w["w1"][l] @ xb
            x = x + w["w2"][l] @ ((g / (1 + np.exp(-g))) * (w["w3"][l] @ xb))
        all_logits.append(w["cls"] @ rmsnorm(x, w["final_norm"]))
    return np.stack(all_logits)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="models/training/out")
    p.add_argument("--name", default="sotu-char")
    p.add_argument("--prompt", default="Fellow-Citizens of the Senate")
    a = p.parse_args()
    cfg, w = read_llama2c(os.path.join(a.out, f"{a.name}.bin"))
    vocab = json.load(open(os.path.join(a.out, "charvocab.json"), encoding="utf-8"))
    ids = {ch: i + 3 for i, ch in enumerate(vocab["chars"])}
    if len(vocab["chars"]) + 3 != cfg["vocab"]:
        raise SystemExit("charvocab.json and the .bin disagree on the vocabulary size")
    tokens = [vocab["bos"]] + [ids.get(ch, vocab["unk"]) for ch in a.prompt]
    ours = forward_numpy(cfg, w, tokens)

    import torch  # only for the comparison; the reload above is numpy alone
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from model import Config, Transformer
    ck = torch.load(os.path.join(a.out, "ckpt.pt"))
    model = Transformer(Config(cfg["dim"], cfg["hidden"], cfg["n_layers"], cfg["n_heads"],
                               cfg["n_kv"], cfg["vocab"], cfg["seq_len"]))
    model.load_state_dict(ck["model"])
    with torch.no_grad():
        theirs = model(torch.tensor([tokens]))[0].double().numpy()
    diff = np.abs(ours - theirs).max()
    same_argmax = bool((ours.argmax(-1) == theirs.argmax(-1)).all())
    print(f"config {cfg}; {len(tokens)} positions; max |logit diff| {diff:.2e}; "
          f"argmax agrees at every position: {same_argmax}")
    if diff > 1e-3 or not same_argmax:
        raise SystemExit("export check FAILED: the .bin does not reproduce the model")
    print("export check OK")


if __name__ == "__main__":
    main()
