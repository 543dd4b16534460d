#!/usr/bin/env python3
"""Training-step throughput of a Llama / RoPE++ model in PyTorch, the baseline
for `ropepp bench train`.

The model follows the RoPE++ authors' formulation (Hugging Face Llama layout,
rotate_half pairs, imaginary heads as extra softmax heads whose query is
-rotate_half of the rotated query, real and imaginary head of one query head
adjacent), in f32 with eager attention, as PyTorch 1.13 (Debian python3-torch)
offers no fused attention. One step = forward, backward and AdamW on random
tokens. Prints one JSON object.

Run with the OpenMP OpenBLAS for the best 2-thread speed:
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 bench/torch_train.py --threads 2
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(torch.nn.Module):
    def __init__(self, hidden, heads, kv_heads, head_dim, variant):
        super().__init__()
        if variant == "eh":
            heads, kv_heads = heads // 2, kv_heads // 2
        self.query_heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.imaginary = variant in ("eh", "ec")
        attention_heads = 2 * heads if self.imaginary else heads
        self.q_proj = torch.nn.Linear(hidden, heads * head_dim, bias=False)
        self.k_proj = torch.nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.v_proj = torch.nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.o_proj = torch.nn.Linear(attention_heads * head_dim, hidden, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.query_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if self.imaginary:
            # [re(q0), im(q0), re(q1), ...] with im(q) = -rotate_half(re(q)).
            q = torch.stack((q, -rotate_half(q)), dim=2).reshape(b, 2 * self.query_heads, t, self.head_dim)
        group = q.shape[1] // self.kv_heads
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim) + mask
        out = F.softmax(scores, dim=-1) @ v
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class RMSNorm(torch.nn.Module):
    def __init__(self, hidden, eps=1e-5):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(hidden))
        self.eps = eps

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


class Block(torch.nn.Module):
    def __init__(self, hidden, heads, kv_heads, head_dim, intermediate, variant):
        super().__init__()
        self.input_layernorm = RMSNorm(hidden)
        self.self_attn = Attention(hidden, heads, kv_heads, head_dim, variant)
        self.post_attention_layernorm = RMSNorm(hidden)
        self.gate_proj = torch.nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = torch.nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = torch.nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(torch.nn.Module):
    def __init__(self, args):
        super().__init__()
        head_dim = args.hidden // args.heads
        self.embed_tokens = torch.nn.Embedding(args.vocab, args.hidden)
        self.layers = torch.nn.ModuleList(
            Block(args.hidden, args.heads, args.kv_heads, head_dim, args.intermediate, args.variant)
            for _ in range(args.layers))
        self.norm = RMSNorm(args.hidden)
        self.lm_head = torch.nn.Linear(args.hidden, args.vocab, bias=False)
        inv_freq = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2).float() / head_dim))
        angles = torch.outer(torch.arange(args.seq_len).float(), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        self.cos, self.sin = angles.cos(), angles.sin()
        self.mask = torch.full((args.seq_len, args.seq_len), float("-inf")).triu(1)

    def forward(self, tokens, targets):
        x = self.embed_tokens(tokens)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, self.mask)
        logits = self.lm_head(self.norm(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--kv-heads", type=int, default=12)
    parser.add_argument("--intermediate", type=int, default=2048)
    parser.add_argument("--vocab", type=int, default=320)
    parser.add_argument("--variant", default="rope", choices=["rope", "eh", "ec"])
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4, help="sequences per step")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Llama(args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, betas=(0.95, 0.99), weight_decay=0.1)
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq_len))
    targets = torch.randint(0, args.vocab, (args.batch, args.seq_len))

    times = []
    for step in range(args.steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = model(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step > 0:
            times.append(time.perf_counter() - start)
    times.sort()
    median = times[len(times) // 2]
    print(json.dumps({
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokens_per_step": args.batch * args.seq_len,
        "step_seconds": median,
        "tokens_per_second": args.batch * args.seq_len / median,
        "loss": loss.item(),
    }))


if __name__ == "__main__":
    main()
