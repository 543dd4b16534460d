#!/usr/bin/python3
"""Time prefill and decode of a RoPE / RoPE++ Llama in PyTorch, written the way
the RoPE++ authors' eager code (OpenMOSS rope_pp on transformers 4.51) computes
it, on a checkpoint written by ropepp. `ropepp bench model --torch` runs it on
the same weights and compares.

Run with Debian's python3-torch and the OpenMP build of OpenBLAS, its best
2-thread configuration on these machines:
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 bench/torch_model.py \
      --model DIR --dtype bf16 --prompt-tokens 512 --decode-tokens 32 --threads 2 --out result.json
Prints and writes {"prefill_seconds", "decode_seconds_per_token", ...} (medians).
With --peer it prints the prefill line, then decodes in rounds on request, so
that ropepp can alternate its own decode rounds with PyTorch's on a machine
whose memory bandwidth drifts.
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch


def read_safetensors(path):
    with open(path, "rb") as stream:
        data = stream.read()
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_size])
    base = 8 + header_size
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = np.frombuffer(data, dtype=np.uint8, count=end - begin, offset=base + begin)
        if entry["dtype"] == "F32":
            array = raw.view("<f4")
        elif entry["dtype"] == "BF16":
            array = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        elif entry["dtype"] == "F16":
            array = raw.view("<f2").astype(np.float32)
        else:
            raise ValueError(f"{path}: unsupported dtype {entry['dtype']}")
        tensors[name] = torch.from_numpy(array.reshape(entry["shape"]).copy())
    return tensors


def read_checkpoint(directory):
    with open(os.path.join(directory, "config.json")) as stream:
        config = json.load(stream)
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as stream:
            shards = sorted(set(json.load(stream)["weight_map"].values()))
        tensors = {}
        for shard in shards:
            tensors.update(read_safetensors(os.path.join(directory, shard)))
        return config, tensors
    return config, read_safetensors(os.path.join(directory, "model.safetensors"))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def repeat_kv(x, n_rep):
    batch, heads, length, dim = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(batch, heads, n_rep, length, dim).reshape(batch, heads * n_rep, length, dim)


class Llama:
    """The decoder in the authors' eager formulation; no scaling (benchmark shapes)."""

    def __init__(self, config, tensors, dtype):
        self.config = config
        self.w = {name: tensor.to(dtype) for name, tensor in tensors.items()}
        if config.get("tie_word_embeddings", False):
            self.w["lm_head.weight"] = self.w["model.embed_tokens.weight"]
        heads = config["num_attention_heads"]
        kv_heads = config["num_key_value_heads"]
        self.head_dim = config.get("head_dim") or config["hidden_size"] // heads
        rope_config = config.get("rope_config") or {}
        self.imag = bool(rope_config.get("imag", False))
        if self.imag and rope_config.get("imag_mode") == "imag1":
            heads //= 2
            kv_heads //= 2
        self.heads, self.kv_heads = heads, kv_heads
        self.n_rep = heads // kv_heads * (2 if self.imag else 1)
        self.eps = config.get("rms_norm_eps", 1e-6)
        self.dtype = dtype
        base = config.get("rope_theta", 10000.0)
        self.inv_freq = 1.0 / (base ** (torch.arange(0, self.head_dim, 2, dtype=torch.int64).float() / self.head_dim))

    def rms_norm(self, x, weight):
        input_dtype = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * x.to(input_dtype)

    def rotary(self, positions):
        freqs = positions[:, None].float() * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(self.dtype), emb.sin().to(self.dtype)

    def attention(self, layer, x, cos, sin, cache):
        prefix = f"model.layers.{layer}.self_attn."
        batch, length, _ = x.shape
        d = self.head_dim
        q = (x @ self.w[prefix + "q_proj.weight"].T).view(batch, length, self.heads, d).transpose(1, 2)
        k = (x @ self.w[prefix + "k_proj.weight"].T).view(batch, length, self.kv_heads, d).transpose(1, 2)
        v = (x @ self.w[prefix + "v_proj.weight"].T).view(batch, length, self.kv_heads, d).transpose(1, 2)
        q_rope = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if self.imag:
            q_imag = q * sin - rotate_half(q) * cos
            q = torch.stack([q_rope, q_imag], dim=2).reshape(batch, 2 * self.heads, length, d)
        else:
            q = q_rope
        if layer in cache:
            k = torch.cat([cache[layer][0], k], dim=2)
            v = torch.cat([cache[layer][1], v], dim=2)
        cache[layer] = (k, v)
        k = repeat_kv(k, self.n_rep)
        v = repeat_kv(v, self.n_rep)
        scores = q @ k.transpose(2, 3) / math.sqrt(d)
        if length > 1:
            total = k.shape[2]
            mask = torch.full((length, total), float("-inf"), dtype=scores.dtype).triu(total - length + 1)
            scores = scores + mask
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        out = (probs @ v).transpose(1, 2).reshape(batch, length, -1)
        return out @ self.w[prefix + "o_proj.weight"].T

    def forward(self, tokens, start, cache, last_only=True):
        positions = torch.arange(start, start + tokens.shape[1])
        cos, sin = self.rotary(positions)
        x = self.w["model.embed_tokens.weight"][tokens]
        for layer in range(self.config["num_hidden_layers"]):
            prefix = f"model.layers.{layer}."
            h = self.rms_norm(x, self.w[prefix + "input_layernorm.weight"])
            x = x + self.attention(layer, h, cos, sin, cache)
            h = self.rms_norm(x, self.w[prefix + "post_attention_layernorm.weight"])
            gate = h @ self.w[prefix + "mlp.gate_proj.weight"].T
            up = h @ self.w[prefix + "mlp.up_proj.weight"].T
            x = x + (torch.nn.functional.silu(gate) * up) @ self.w[prefix + "mlp.down_proj.weight"].T
        if last_only:
            x = x[:, -1:, :]
        x = self.rms_norm(x, self.w["model.norm.weight"])
        return x @ self.w["lm_head.weight"].T


def median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])


class Decoder:
    """Decode after the prompt, feeding a fixed token sequence one step at a time."""

    def __init__(self, model, cache, position, vocab):
        self.model, self.cache, self.position, self.vocab = model, cache, position, vocab
        self.token = 1

    def run(self, steps):
        """Decodes `steps` tokens and returns the median seconds of one step."""
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            self.model.forward(torch.tensor([[self.token]]), self.position, self.cache)
            times.append(time.perf_counter() - start)
            self.position += 1
            self.token = (self.token * 31 + 7) % self.vocab
        return median(times)


def serve_decode_rounds(decoder):
    """Replies to each "decode N ID" line on stdin with one JSON line, until "quit" or end of input."""
    for line in iter(sys.stdin.readline, ""):
        words = line.split()
        if not words or words[0] == "quit":
            return
        if words[0] != "decode" or len(words) != 3 or not words[1].isdigit() or not words[2].isdigit():
            raise SystemExit(f"torch_model.py: invalid peer command {line!r}: expected 'decode N ID' or 'quit'")
        seconds = decoder.run(int(words[1]))
        print(json.dumps({"decode_seconds_per_token": seconds, "id": int(words[2])}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint folder written by ropepp")
    parser.add_argument("--dtype", choices=["f32", "bf16"], default="f32", help="weight and activation type")
    parser.add_argument("--prompt-tokens", type=int, default=512, help="prefill length in tokens")
    parser.add_argument("--decode-tokens", type=int, default=32, help="tokens decoded after the prompt")
    parser.add_argument("--repeats", type=int, default=3, help="timed prefills; the median is reported")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--out", help="also write the JSON result to this file")
    parser.add_argument(
        "--peer",
        action="store_true",
        help="print the prefill result, then decode in rounds on request ('decode N ID' lines on stdin); "
        "`ropepp bench model --torch` alternates these rounds with its own",
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    config, tensors = read_checkpoint(args.model)
    model = Llama(config, tensors, dtype)
    vocab = config["vocab_size"]
    tokens = torch.tensor([[(i * 7919 + 13) % vocab for i in range(args.prompt_tokens)]])

    with torch.inference_mode():
        prefill_times = []
        for repeat in range(args.repeats + 1):  # the first run warms up
            cache = {}
            start = time.perf_counter()
            model.forward(tokens, 0, cache)
            if repeat > 0:
                prefill_times.append(time.perf_counter() - start)
        result = {
            "dtype": args.dtype,
            "threads": args.threads,
            "prompt_tokens": args.prompt_tokens,
            "prefill_seconds": median(prefill_times),
            "torch_version": torch.__version__,
        }

        decoder = Decoder(model, cache, args.prompt_tokens, vocab)
        if args.peer:
            print(json.dumps(result), flush=True)
            serve_decode_rounds(decoder)
            return
        result["decode_seconds_per_token"] = decoder.run(args.decode_tokens)

    text = json.dumps(result)
    print(text)
    if args.out:
        with open(args.out, "w") as stream:
            stream.write(text + "\n")


if __name__ == "__main__":
    main()
