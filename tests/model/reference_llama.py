#!/usr/bin/python3
"""Float64 reference of a Llama / RoPE++ forward pass, written independently of
ropepp's C++ code, for the model tests.

It follows the eager PyTorch formulation of the RoPE++ authors (OpenMOSS
rope_pp, on transformers 4.51 Llama) with numpy only:
  * rotary cos/sin from inv_freq, with their linear and YaRN scalings and
    Hugging Face's rope_type "yarn";
  * q_rope = q*cos + rotate_half(q)*sin, q_imag = q*sin - rotate_half(q)*cos,
    stacked on a new axis after the head axis and reshaped, which interleaves
    the heads as [re(q0), im(q0), re(q1), im(q1), ...];
  * repeat_kv with num_key_value_groups * 2 for RoPE++;
  * one softmax per head with a causal mask, o_proj, RMSNorm, SwiGLU, LM head.

The checkpoint is read directly: config.json and model.safetensors (or the
shards of model.safetensors.index.json), F32, BF16 (uint16 << 16) or F16.

Usage: reference_llama.py JOBS.json
JOBS.json is a list of {"model": DIR, "tokens": [...], "positions": [...] (optional),
"out": LOGITS.npy}; each job writes float32 logits [T, vocab].
"""
import json
import math
import os
import struct
import sys

import numpy as np


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
        raw = data[base + begin : base + end]
        shape = entry["shape"]
        dtype = entry["dtype"]
        if dtype == "F32":
            array = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32).astype(np.float64)
        elif dtype == "F16":
            array = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        else:
            raise ValueError(f"{path}: unsupported dtype {dtype} for {name}")
        tensors[name] = array.reshape(shape)
    return tensors


def read_checkpoint(directory):
    with open(os.path.join(directory, "config.json")) as stream:
        config = json.load(stream)
    index_path = os.path.join(directory, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(index_path):
        with open(index_path) as stream:
            weight_map = json.load(stream)["weight_map"]
        for shard in sorted(set(weight_map.values())):
            tensors.update(read_safetensors(os.path.join(directory, shard)))
    else:
        tensors = read_safetensors(os.path.join(directory, "model.safetensors"))
    return config, tensors


def rotary_inv_freq(config, head_dim):
    """inv_freq after scaling, and the factor on cos and sin."""
    base = config.get("rope_theta", 10000.0)
    inv_freq = 1.0 / base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    magnitude = 1.0

    rope_config = config.get("rope_config") or {}
    rope_scaling = config.get("rope_scaling") or {}
    if "factor" in rope_config:
        factor = rope_config["factor"]
        if rope_config.get("yarn", False):
            # The authors' YaRN: ramp on the rotation count over a 4096-token
            # context between 1 and 32 rotations.
            rotations = 4096 / (2 * math.pi) * inv_freq
            gamma = np.clip((rotations - 1) / (32 - 1), 0.0, 1.0)
            inv_freq = (1 - gamma) * inv_freq / factor + gamma * inv_freq
            magnitude = 0.1 * math.log(factor) + 1
        else:
            inv_freq = inv_freq / factor
    elif rope_scaling.get("rope_type", rope_scaling.get("type")) == "linear":
        inv_freq = inv_freq / rope_scaling["factor"]
    elif rope_scaling.get("rope_type", rope_scaling.get("type")) == "yarn":
        # transformers' _compute_yarn_parameters.
        factor = rope_scaling["factor"]
        original = rope_scaling.get("original_max_position_embeddings", config["max_position_embeddings"])
        beta_fast = rope_scaling.get("beta_fast") or 32
        beta_slow = rope_scaling.get("beta_slow") or 1
        attention_factor = rope_scaling.get("attention_factor")
        if attention_factor is None:
            attention_factor = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0

        def correction_dim(num_rotations):
            return head_dim * math.log(original / (num_rotations * 2 * math.pi)) / (2 * math.log(base))

        low = max(math.floor(correction_dim(beta_fast)), 0)
        high = min(math.ceil(correction_dim(beta_slow)), head_dim - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(head_dim // 2, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
        extrapolation_weight = 1.0 - ramp
        inv_freq = (inv_freq / factor) * (1 - extrapolation_weight) + inv_freq * extrapolation_weight
        magnitude = attention_factor
    return inv_freq, magnitude


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def rms_norm(x, weight, eps):
    variance = np.mean(x * x, axis=-1, keepdims=True)
    return weight * (x / np.sqrt(variance + eps))


def silu(x):
    return x / (1.0 + np.exp(-x))


def forward(config, tensors, tokens, positions):
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    head_dim = config.get("head_dim") or hidden // heads
    eps = config.get("rms_norm_eps", 1e-6)
    rope_config = config.get("rope_config") or {}
    imaginary = bool(rope_config.get("imag", False))
    imag_mode = rope_config.get("imag_mode")
    if imaginary and imag_mode == "imag1":
        # Equal heads: half the query and key/value heads, each query head
        # yields a real and an imaginary head.
        heads //= 2
        kv_heads //= 2
    groups = heads // kv_heads

    inv_freq, magnitude = rotary_inv_freq(config, head_dim)
    angles = np.outer(np.asarray(positions, dtype=np.float64), inv_freq)  # [T, d/2]
    emb = np.concatenate([angles, angles], axis=-1)
    cos = np.cos(emb) * magnitude  # [T, d]
    sin = np.sin(emb) * magnitude

    n = len(tokens)
    x = tensors["model.embed_tokens.weight"][np.asarray(tokens)]
    causal = np.triu(np.full((n, n), -np.inf), k=1)
    for layer in range(config["num_hidden_layers"]):
        prefix = f"model.layers.{layer}."
        h = rms_norm(x, tensors[prefix + "input_layernorm.weight"], eps)
        q = (h @ tensors[prefix + "self_attn.q_proj.weight"].T).reshape(n, heads, head_dim).transpose(1, 0, 2)
        k = (h @ tensors[prefix + "self_attn.k_proj.weight"].T).reshape(n, kv_heads, head_dim).transpose(1, 0, 2)
        v = (h @ tensors[prefix + "self_attn.v_proj.weight"].T).reshape(n, kv_heads, head_dim).transpose(1, 0, 2)

        q_rope = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if imaginary:
            q_imag = q * sin - rotate_half(q) * cos
            q = np.stack([q_rope, q_imag], axis=1).reshape(2 * heads, n, head_dim)
            repeat = groups * 2
        else:
            q = q_rope
            repeat = groups
        k = np.repeat(k, repeat, axis=0)
        v = np.repeat(v, repeat, axis=0)

        scores = q @ k.transpose(0, 2, 1) / math.sqrt(head_dim) + causal
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        attn = (probs @ v).transpose(1, 0, 2).reshape(n, -1)
        x = x + attn @ tensors[prefix + "self_attn.o_proj.weight"].T

        h = rms_norm(x, tensors[prefix + "post_attention_layernorm.weight"], eps)
        gate = h @ tensors[prefix + "mlp.gate_proj.weight"].T
        up = h @ tensors[prefix + "mlp.up_proj.weight"].T
        x = x + (silu(gate) * up) @ tensors[prefix + "mlp.down_proj.weight"].T

    x = rms_norm(x, tensors["model.norm.weight"], eps)
    if config.get("tie_word_embeddings", False):
        head = tensors["model.embed_tokens.weight"]
    else:
        head = tensors["lm_head.weight"]
    return x @ head.T


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: reference_llama.py JOBS.json")
    with open(sys.argv[1]) as stream:
        jobs = json.load(stream)
    loaded = {}
    for job in jobs:
        directory = job["model"]
        if directory not in loaded:
            loaded[directory] = read_checkpoint(directory)
        config, tensors = loaded[directory]
        tokens = job["tokens"]
        positions = job.get("positions") or list(range(len(tokens)))
        logits = forward(config, tensors, tokens, positions)
        np.save(job["out"], logits.astype("<f4"))


if __name__ == "__main__":
    main()
