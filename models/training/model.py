"""The Llama-architecture model the bundled checkpoint is trained as.

Every choice here mirrors what our llama2.c reader and forward passes compute, so the
exported .bin runs unchanged there:
- RMSNorm with a weight and eps 1e-5, no bias (Zhang & Sennrich 2019, eq. 4).
- Rotary embeddings on interleaved pairs (x[2i], x[2i+1]) of each head with frequency
  10000^(-2i/head_size) (Su et al. 2021, eq. 34; llama2.c's run.c pairing).
- Grouped-query attention: each K/V head serves n_heads / n_kv_heads query heads.
- SwiGLU feed-forward w2(silu(w1 x) * w3 x) (Shazeer 2020, eq. 6), no biases.
- Pre-norm residual blocks, a final RMSNorm, and an LM head tied to the embedding.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

NORM_EPS = 1e-5
ROPE_THETA = 10000.0


@dataclass
class Config:
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int

    @property
    def head_size(self) -> int:
        return self.dim // self.n_heads


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + NORM_EPS) * self.weight


def rope_tables(head_size: int, seq_len: int):
    """cos and sin of position * theta^(-2i/head_size), each [seq_len, head_size/2]."""
    inv_freq = ROPE_THETA ** (-torch.arange(0, head_size, 2).float() / head_size)
    angles = torch.outer(torch.arange(seq_len).float(), inv_freq)
    return torch.cos(angles), torch.sin(angles)


def apply_rope(x, cos, sin):
    """x: [B, T, H, head_size]; rotate each interleaved pair by its position's angle."""
    B, T, H, S = x.shape
    pairs = x.reshape(B, T, H, S // 2, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    c = cos[:T].view(1, T, 1, S // 2)
    s = sin[:T].view(1, T, 1, S // 2)
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).reshape(B, T, H, S)


class Attention(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        hs = cfg.head_size
        self.n_heads, self.n_kv_heads, self.head_size = cfg.n_heads, cfg.n_kv_heads, hs
        self.wq = nn.Linear(cfg.dim, cfg.n_heads * hs, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.n_kv_heads * hs, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.n_kv_heads * hs, bias=False)
        self.wo = nn.Linear(cfg.n_heads * hs, cfg.dim, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = apply_rope(self.wq(x).view(B, T, self.n_heads, self.head_size), cos, sin)
        k = apply_rope(self.wk(x).view(B, T, self.n_kv_heads, self.head_size), cos, sin)
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_size)
        rep = self.n_heads // self.n_kv_heads
        if rep > 1:
            k = k.repeat_interleave(rep, dim=2)
            v = v.repeat_interleave(rep, dim=2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, T, hs]
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_size) + mask[:, :, :T, :T]
        out = F.softmax(scores, dim=-1) @ v
        return self.wo(out.transpose(1, 2).reshape(B, T, -1))


class FeedForward(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)
        self.w2 = nn.Linear(cfg.hidden_dim, cfg.dim, bias=False)
        self.w3 = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.attention_norm = RMSNorm(cfg.dim)
        self.attention = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.dim)
        self.feed_forward = FeedForward(cfg)

    def forward(self, x, cos, sin, mask):
        x = x + self.attention(self.attention_norm(x), cos, sin, mask)
        return x + self.feed_forward(self.ffn_norm(x))


class Transformer(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self.output.weight = self.tok_embeddings.weight  # tied classifier
        cos, sin = rope_tables(cfg.head_size, cfg.seq_len)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        mask = torch.full((cfg.seq_len, cfg.seq_len), float("-inf")).triu(1)
        self.register_buffer("mask", mask.view(1, 1, cfg.seq_len, cfg.seq_len), persistent=False)
        self.apply(self._init_weights)
        # Residual-branch outputs scaled down with depth (GPT-2 paper, section 2.3).
        for name, p in self.named_parameters():
            if name.endswith("wo.weight") or name.endswith("w2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, tokens):
        h = self.tok_embeddings(tokens)
        for layer in self.layers:
            h = layer(h, self.rope_cos, self.rope_sin, self.mask)
        return self.output(self.norm(h))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # tied weight counted once
