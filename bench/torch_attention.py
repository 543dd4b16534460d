#!/usr/bin/env python3
"""PyTorch eager baseline for `ropepp bench attention --torch`.

Times the RoPE / RoPE++ attention formulation of the RoPE++ authors' Hugging
Face Llama code in eager PyTorch: rotate the queries and keys, stack each real
query with its imaginary query (q * sin - rotate_half(q) * cos) along a new
head axis, repeat the key/value heads for grouped-query attention, then
matmul, causal mask, softmax in f32 and matmul. Prints one JSON object with
the median times on stdout.

Run it with /usr/bin/python3 (Debian's python3-torch) and, for its fastest
2-thread setup, LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp.
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def cos_sin(positions, head_dim, theta=10000.0):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat((angles, angles), dim=-1)
    return emb.cos(), emb.sin()


def repeat_kv(x, n_rep):
    # [batch, kv_heads, tokens, head_dim] -> [batch, kv_heads * n_rep, tokens, head_dim]
    batch, kv_heads, tokens, head_dim = x.shape
    if n_rep == 1:
        return x
    x = x[:, :, None, :, :].expand(batch, kv_heads, n_rep, tokens, head_dim)
    return x.reshape(batch, kv_heads * n_rep, tokens, head_dim)


def layout(variant, heads, kv_heads):
    """Returns (query heads, key/value heads, imaginary heads on) as in the authors' configs."""
    if variant == "rope":
        return heads, kv_heads, False
    if variant == "eh":
        return heads // 2, kv_heads // 2, True
    if variant == "ec":
        return heads, kv_heads, True
    raise ValueError(f"invalid variant {variant!r}: expected rope, eh or ec")


def query_states(q, cos, sin, imaginary):
    """q: [batch, heads, tokens, head_dim] before rotation -> the attention heads' queries."""
    q_re = q * cos + rotate_half(q) * sin
    if not imaginary:
        return q_re
    q_im = q * sin - rotate_half(q) * cos
    batch, heads, tokens, head_dim = q.shape
    # Real and imaginary head of each query head next to each other: [re(q0), im(q0), re(q1), ...].
    return torch.stack((q_re, q_im), dim=2).reshape(batch, 2 * heads, tokens, head_dim)


def attention(query, key, value, mask):
    scores = torch.matmul(query, key.transpose(2, 3)) / math.sqrt(query.shape[-1])
    if mask is not None:
        scores = scores + mask
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    return torch.matmul(probs, value)


def prefill_step(q, k, v, cos, sin, imaginary, n_rep, mask):
    query = query_states(q, cos, sin, imaginary)
    key = k * cos + rotate_half(k) * sin
    return attention(query, repeat_kv(key, n_rep), repeat_kv(v, n_rep), mask)


def median_seconds(repeats, fn):
    fn()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_prefill(variant, tokens, args):
    n_q, n_kv, imaginary = layout(variant, args.heads, args.kv_heads)
    d = args.head_dim
    n_rep = (2 * n_q if imaginary else n_q) // n_kv
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, n_q, tokens, d, generator=gen)
    k = torch.randn(1, n_kv, tokens, d, generator=gen)
    v = torch.randn(1, n_kv, tokens, d, generator=gen)
    cos, sin = cos_sin(torch.arange(tokens), d)
    mask = torch.full((tokens, tokens), float("-inf")).triu(1)[None, None]

    result = {"variant": variant, "tokens": tokens}
    with torch.no_grad():
        result["forward_s"] = median_seconds(args.repeats, lambda: prefill_step(q, k, v, cos, sin, imaginary, n_rep, mask))
    if args.backward:
        q.requires_grad_(True)
        k.requires_grad_(True)
        v.requires_grad_(True)
        grad = torch.randn(1, 2 * n_q if imaginary else n_q, tokens, d, generator=gen)

        def step():
            out = prefill_step(q, k, v, cos, sin, imaginary, n_rep, mask)
            out.backward(grad)
            q.grad = k.grad = v.grad = None

        result["forward_backward_s"] = median_seconds(args.repeats, step)
    return result


def time_decode(variant, cache_type, cache_tokens, args):
    n_q, n_kv, imaginary = layout(variant, args.heads, args.kv_heads)
    d = args.head_dim
    n_rep = (2 * n_q if imaginary else n_q) // n_kv
    dtype = torch.float32 if cache_type == "f32" else torch.bfloat16
    gen = torch.Generator().manual_seed(1)
    # The cache holds rotated keys, as the authors' DynamicCache does.
    key_cache = torch.randn(1, n_kv, cache_tokens, d, generator=gen).to(dtype)
    value_cache = torch.randn(1, n_kv, cache_tokens, d, generator=gen).to(dtype)
    q = torch.randn(1, n_q, 1, d, generator=gen).to(dtype)
    cos, sin = cos_sin(torch.tensor([cache_tokens - 1]), d)
    cos, sin = cos.to(dtype), sin.to(dtype)

    def step():
        query = query_states(q, cos, sin, imaginary)
        # One new query sees every cached key: no mask.
        return attention(query, repeat_kv(key_cache, n_rep), repeat_kv(value_cache, n_rep), None)

    with torch.no_grad():
        seconds = median_seconds(args.decode_repeats, step)
    return {"variant": variant, "cache_type": cache_type, "cache_tokens": cache_tokens, "seconds": seconds}


def parse_list(text, convert=str):
    return [convert(item) for item in text.split(",") if item]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", type=int, default=8, help="num_attention_heads of the config (default 8)")
    parser.add_argument("--kv-heads", type=int, default=4, help="num_key_value_heads of the config (default 4)")
    parser.add_argument("--head-dim", type=int, default=128, help="head size (default 128)")
    parser.add_argument("--variants", default="rope,eh,ec", help="comma-separated: rope, eh, ec")
    parser.add_argument("--prefill-lengths", default="512,1024,2048,4096", help="comma-separated token counts")
    parser.add_argument("--decode-lengths", default="4096,16384,32768", help="comma-separated cache lengths in tokens")
    parser.add_argument("--cache-types", default="f32,bf16", help="comma-separated: f32, bf16")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per prefill case (default 3)")
    parser.add_argument("--decode-repeats", type=int, default=21, help="timed repeats per decode case (default 21)")
    parser.add_argument("--no-backward", dest="backward", action="store_false", help="time the forward only")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    variants = parse_list(args.variants)
    report = {"torch_version": torch.__version__, "threads": torch.get_num_threads(), "prefill": [], "decode": []}
    for tokens in parse_list(args.prefill_lengths, int):
        for variant in variants:
            report["prefill"].append(time_prefill(variant, tokens, args))
            print(f"torch prefill {variant} T={tokens} done", file=sys.stderr)
    for cache_type in parse_list(args.cache_types):
        for cache_tokens in parse_list(args.decode_lengths, int):
            for variant in variants:
                report["decode"].append(time_decode(variant, cache_type, cache_tokens, args))
    json.dump(report, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
