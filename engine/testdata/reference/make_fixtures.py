#!/usr/bin/python3
"""Independent PyTorch reference forward passes for every family tether supports.

For each tiny random model below this script writes, under
engine/testdata/reference/<name>/:

  config.json            a Hugging Face style config for the architecture
  model.safetensors      the weights (F32) under Hugging Face tensor names
  reference.safetensors  F32 tensors: input_ids [B,T] (token ids stored as
                         float32 values), logits [B,T,V],
                         hidden_states [L+1,B,T,H] (index 0 = embedding output,
                         index i = raw output of decoder block i, before the
                         final norm), final_hidden [B,T,H] (final norm applied
                         to the last block output)

The math mirrors Hugging Face transformers' modeling code (modeling_llama.py,
modeling_mistral.py, modeling_qwen2.py, modeling_qwen3.py, modeling_gemma2.py,
modeling_gemma3.py, modeling_phi3.py, masking_utils.py, modeling_rope_utils.py), written from
scratch. Everything is computed in float64 from the float32 weights that are
stored, and the results are stored as float32.

Usage:
  /usr/bin/python3 engine/testdata/reference/make_fixtures.py          # (re)write
  /usr/bin/python3 engine/testdata/reference/make_fixtures.py --check  # verify files on disk

Needs only torch (Debian python3-torch 1.13) and the standard library.
"""

import argparse
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))

BATCH = 2  # sequences per fixture, same length, no padding
SEQ = 12   # tokens per sequence
COMPUTE = torch.float64


# --------------------------------------------------------------------------
# safetensors, written and read by hand (no safetensors package here)
# --------------------------------------------------------------------------

_DTYPE_NAMES = {torch.float32: "F32", torch.int64: "I64"}


def safetensors_bytes(tensors, metadata=None):
    """Serializes {name: tensor} in the safetensors format.

    Layout: 8-byte little-endian header length N, N bytes of JSON header
    {name: {dtype, shape, data_offsets: [begin, end]}} (plus optional
    "__metadata__" of string values) padded with spaces to a multiple of 8,
    then the raw little-endian tensor bytes in header order. Tensors are laid
    out sorted by name so the bytes are deterministic.
    """
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        if t.dtype not in _DTYPE_NAMES:
            raise ValueError(f"safetensors: tensor {name!r}: unsupported dtype {t.dtype}")
        raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": _DTYPE_NAMES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * ((8 - len(head) % 8) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


def read_safetensors(data):
    """Parses safetensors bytes into {name: tensor} (F32 and I64 only)."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = {"F32": torch.float32, "I64": torch.int64}[info["dtype"]]
        buf = bytearray(body[begin:end])
        out[name] = torch.frombuffer(buf, dtype=dtype).reshape(info["shape"]).clone()
    return out


# --------------------------------------------------------------------------
# The models: Hugging Face style config.json contents
# --------------------------------------------------------------------------

def llama_config():
    """Llama 3 style: GQA, llama3 rope_scaling, tied embeddings.

    rope_theta and original_max_position_embeddings are chosen (10000 and 64,
    head_dim 16) so that the llama3 rescaling has frequencies in all three of
    its regimes (kept, smoothed, divided by factor) and changes positions < 12
    measurably; real Llama 3.x uses 500000 / 8192 with head_dim 64 or 128.
    """
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": [2, 3],
        "head_dim": 16,
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": 128,
        "max_position_embeddings": 512,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {
            "factor": 8.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 64,
            "rope_type": "llama3",
        },
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": 128,
    }


def llama_untied_config():
    """Llama 2 / SmolLM2 style: no rope scaling, separate lm_head, no head_dim key."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "max_position_embeddings": 256,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 4,
        "num_hidden_layers": 3,
        "num_key_value_heads": 2,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": 160,
    }


def mistral_config():
    """Mistral 7B v0.1 style: sliding window on every layer (4 < 12 tokens)."""
    return {
        "architectures": ["MistralForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": 8,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "max_position_embeddings": 256,
        "model_type": "mistral",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "sliding_window": 4,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": 128,
    }


def qwen2_config():
    """Qwen2.5 0.5B style: q/k/v biases (always on for Qwen2), tied, no sliding."""
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "max_position_embeddings": 256,
        "max_window_layers": 2,
        "model_type": "qwen2",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": 256,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 144,
    }


def qwen3_config():
    """Qwen3 style: per-head q/k RMSNorm before rope, head_dim 16 != 32/4, untied."""
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "head_dim": 16,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "max_position_embeddings": 256,
        "max_window_layers": 2,
        "model_type": "qwen3",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 128,
    }


def gemma2_config():
    """Gemma 2 style: sandwich norms, (1+w) RMSNorm, GeGLU, embedding * sqrt(H),
    query_pre_attn_scalar 24 != head_dim 16, sliding window 4 on even layers,
    softcaps small enough to bend these tiny models' scores and logits
    (real Gemma 2 uses 50 and 30)."""
    return {
        "architectures": ["Gemma2ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": 2.0,
        "bos_token_id": 2,
        "cache_implementation": "hybrid",
        "eos_token_id": 1,
        "final_logit_softcapping": 3.0,
        "head_dim": 16,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": 48,
        "initializer_range": 0.02,
        "intermediate_size": 96,
        "max_position_embeddings": 256,
        "model_type": "gemma2",
        "num_attention_heads": 4,
        "num_hidden_layers": 3,
        "num_key_value_heads": 2,
        "pad_token_id": 0,
        "query_pre_attn_scalar": 24,
        "rms_norm_eps": 1e-06,
        "rope_theta": 10000.0,
        "sliding_window": 4,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": 192,
    }


def gemma3_config():
    """Gemma 3 text (1B/4B style): q/k norm (1+w), local rope base 10000 on
    sliding layers vs global 1e6 with linear scaling 8, sliding window 4,
    sliding_window_pattern 3 (layer i global iff (i+1) % 3 == 0, so layers
    0,1,3 slide and 2 is global - a pattern distinct from Gemma 2's), with the
    equivalent layer_types list that newer configs carry."""
    n_layers = 4
    pattern = 3
    layer_types = [
        "full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(n_layers)
    ]
    return {
        "architectures": ["Gemma3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": None,
        "bos_token_id": 2,
        "cache_implementation": "hybrid",
        "eos_token_id": [1, 106],
        "final_logit_softcapping": None,
        "head_dim": 16,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": 48,
        "initializer_range": 0.02,
        "intermediate_size": 96,
        "layer_types": layer_types,
        "max_position_embeddings": 1024,
        "model_type": "gemma3_text",
        "num_attention_heads": 4,
        "num_hidden_layers": n_layers,
        "num_key_value_heads": 2,
        "pad_token_id": 0,
        "query_pre_attn_scalar": 20,
        "rms_norm_eps": 1e-06,
        "rope_local_base_freq": 10000.0,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
        "rope_theta": 1000000.0,
        "sliding_window": 4,
        "sliding_window_pattern": pattern,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": 256,
    }


def phi3_config():
    """Phi-3 mini style (Phi3ForCausalLM): fused qkv_proj (q|k|v rows) and
    gate_up_proj (gate|up rows), sliding window 5 on every layer, untied, no
    head_dim key. GQA (4 heads, 2 KV heads; Phi-3-medium has GQA, mini does
    not) so that the q|k|v split points differ from thirds."""
    return {
        "architectures": ["Phi3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "embd_pdrop": 0.0,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 48,
        "max_position_embeddings": 256,
        "model_type": "phi3",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "original_max_position_embeddings": 256,
        "pad_token_id": 2,
        "resid_pdrop": 0.0,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "sliding_window": 5,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": 112,
    }


# name -> (config factory, torch seed)
MODELS = {
    "llama": (llama_config, 1001),
    "llama_untied": (llama_untied_config, 1002),
    "mistral": (mistral_config, 1003),
    "qwen2": (qwen2_config, 1004),
    "qwen3": (qwen3_config, 1005),
    "gemma2": (gemma2_config, 1006),
    "gemma3": (gemma3_config, 1007),
    "phi3": (phi3_config, 1008),
}


# --------------------------------------------------------------------------
# Reading a config the way transformers does
# --------------------------------------------------------------------------

def family(cfg):
    """The modeling file that handles this config's model_type."""
    return {
        "llama": "llama",
        "mistral": "mistral",
        "qwen2": "qwen2",
        "qwen3": "qwen3",
        "gemma2": "gemma2",
        "gemma3_text": "gemma3",
        "phi3": "phi3",
    }[cfg["model_type"]]


def is_gemma(cfg):
    return family(cfg) in ("gemma2", "gemma3")


def head_dim(cfg):
    hd = cfg.get("head_dim")
    return hd if hd else cfg["hidden_size"] // cfg["num_attention_heads"]


def has_qkv_bias(cfg):
    # Qwen2Attention: q/k/v always have biases, o_proj never. Others: attention_bias
    # switches all four.
    if family(cfg) == "qwen2":
        return True
    return bool(cfg.get("attention_bias", False))


def has_o_bias(cfg):
    if family(cfg) == "qwen2":
        return False
    return bool(cfg.get("attention_bias", False))


def has_qk_norm(cfg):
    return family(cfg) in ("qwen3", "gemma3")


def activation(cfg):
    name = cfg.get("hidden_activation") or cfg.get("hidden_act")
    if name == "silu":
        return F.silu
    if name in ("gelu_pytorch_tanh",):
        return lambda x: F.gelu(x, approximate="tanh")
    raise ValueError(f"unsupported activation {name!r}")


def sliding_window_for_layer(cfg, i):
    """The window of layer i, or None for full causal attention.

    mistral, phi3: every layer when sliding_window is set.
    qwen2/qwen3: layer i slides iff use_sliding_window and i >= max_window_layers.
    gemma2: even layers (layer_idx % 2 == 0).
    gemma3: layer_types, else layer i is global iff (i+1) % sliding_window_pattern == 0.
    llama: never.
    """
    fam = family(cfg)
    w = cfg.get("sliding_window")
    if fam in ("mistral", "phi3"):
        return w
    if fam in ("qwen2", "qwen3"):
        if cfg.get("use_sliding_window") and w and i >= cfg.get("max_window_layers", 0):
            return w
        return None
    if fam == "gemma2":
        return w if i % 2 == 0 else None
    if fam == "gemma3":
        types = cfg.get("layer_types")
        if types is None:
            pattern = cfg.get("sliding_window_pattern", 6)
            sliding = (i + 1) % pattern != 0
        else:
            sliding = types[i] == "sliding_attention"
        return w if sliding else None
    return None


def attention_scale(cfg):
    if is_gemma(cfg):
        return cfg["query_pre_attn_scalar"] ** -0.5
    return head_dim(cfg) ** -0.5


# --------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------

def rms_norm(x, weight, eps, plus_one):
    """LlamaRMSNorm (x * w) or Gemma RMSNorm (x * (1 + w)), over the last axis."""
    x = x.to(COMPUTE)
    normed = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    w = weight.to(COMPUTE)
    return normed * ((1.0 + w) if plus_one else w)


def default_inv_freq(dim, theta):
    """inv_freq[j] = 1 / theta^(2j/dim), j = 0..dim/2-1."""
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=COMPUTE) / dim))


def llama3_inv_freq(inv_freq, scaling):
    """modeling_rope_utils._compute_llama3_parameters, applied to inv_freq."""
    factor = scaling["factor"]
    low = scaling["low_freq_factor"]
    high = scaling["high_freq_factor"]
    old_ctx = scaling["original_max_position_embeddings"]
    low_freq_wavelen = old_ctx / low
    high_freq_wavelen = old_ctx / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_ctx / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


def rope_inv_freq(cfg, sliding):
    """inv_freq for a layer. Gemma 3 sliding layers use rope_local_base_freq with
    no scaling; everything else uses rope_theta with rope_scaling."""
    dim = head_dim(cfg)
    if family(cfg) == "gemma3" and sliding:
        return default_inv_freq(dim, cfg["rope_local_base_freq"])
    inv = default_inv_freq(dim, cfg["rope_theta"])
    scaling = cfg.get("rope_scaling")
    if scaling:
        kind = scaling.get("rope_type", scaling.get("type"))
        if kind == "linear":
            inv = inv / scaling["factor"]
        elif kind == "llama3":
            inv = llama3_inv_freq(inv, scaling)
        elif kind != "default":
            raise ValueError(f"unsupported rope_type {kind!r}")
    return inv


def rope_cos_sin(inv_freq, seq_len):
    """cos and sin [T, head_dim] for positions 0..T-1 (angles duplicated: cat(f, f))."""
    pos = torch.arange(seq_len, dtype=COMPUTE)
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x, cos, sin):
    """x [B, heads, T, hd]; rotate-half layout: pairs are (j, j + hd/2)."""
    return x * cos + rotate_half(x) * sin


def repeat_kv(x, n_rep):
    """[B, kv, T, hd] -> [B, kv*n_rep, T, hd]; query head h reads kv head h // n_rep."""
    b, kv, t, hd = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, kv, n_rep, t, hd).reshape(b, kv * n_rep, t, hd)


def additive_mask(seq_len, window):
    """masking_utils semantics: key kv is visible to query q iff kv <= q and, with
    a window W, kv > q - W (so W keys including the query's own position).
    Masked entries get float32's most negative value, as transformers does."""
    q = torch.arange(seq_len)[:, None]
    k = torch.arange(seq_len)[None, :]
    allowed = k <= q
    if window is not None:
        allowed &= k > q - window
    neg = torch.finfo(torch.float32).min
    return torch.where(allowed, torch.zeros((), dtype=COMPUTE), torch.full((), neg, dtype=COMPUTE))


def attention_batched(q, k, v, scale, softcap, mask):
    """eager_attention_forward: q [B,H,T,hd], k/v [B,KV,T,hd] -> [B,H,T,hd]."""
    n_rep = q.shape[1] // k.shape[1]
    k = repeat_kv(k, n_rep)
    v = repeat_kv(v, n_rep)
    scores = torch.matmul(q, k.transpose(2, 3)) * scale
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    scores = scores + mask
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(probs, v)


def attention_loops(q, k, v, scale, softcap, window):
    """The same attention written as explicit loops (self-check only)."""
    b_n, h_n, t_n, _ = q.shape
    n_rep = h_n // k.shape[1]
    out = torch.zeros_like(q)
    for b in range(b_n):
        for h in range(h_n):
            kvh = h // n_rep
            for t in range(t_n):
                first = 0 if window is None else max(0, t - window + 1)
                keys = list(range(first, t + 1))
                scores = []
                for s in keys:
                    x = float(torch.dot(q[b, h, t], k[b, kvh, s])) * scale
                    if softcap is not None:
                        x = softcap * math.tanh(x / softcap)
                    scores.append(x)
                top = max(scores)
                ws = [math.exp(x - top) for x in scores]
                total = sum(ws)
                for s, w in zip(keys, ws):
                    out[b, h, t] += (w / total) * v[b, kvh, s]
    return out


def linear(x, weight, bias=None):
    y = torch.matmul(x, weight.to(COMPUTE).t())
    if bias is not None:
        y = y + bias.to(COMPUTE)
    return y


# --------------------------------------------------------------------------
# Forward pass
# --------------------------------------------------------------------------

def forward(cfg, w, input_ids, check_attention=False):
    """Runs the model; returns dict(hidden_states [L+1,B,T,H], final_hidden, logits).

    w maps Hugging Face tensor names to float32 tensors. With check_attention,
    every layer's attention is also computed with attention_loops and compared.
    """
    gemma = is_gemma(cfg)
    eps = cfg["rms_norm_eps"]
    hd = head_dim(cfg)
    n_heads = cfg["num_attention_heads"]
    n_kv = cfg["num_key_value_heads"]
    act = activation(cfg)
    scale = attention_scale(cfg)
    attn_cap = cfg.get("attn_logit_softcapping") if family(cfg) == "gemma2" else None
    # Gemma 3's eager attention is not passed a softcap (the config key is null anyway).
    final_cap = cfg.get("final_logit_softcapping") if gemma else None
    b_n, t_n = input_ids.shape

    h = w["model.embed_tokens.weight"].to(COMPUTE)[input_ids]
    if gemma:
        # The normalizer is a tensor of the activation dtype (float32 here).
        h = h * float(torch.tensor(cfg["hidden_size"] ** 0.5, dtype=torch.float32))
    hidden_states = [h]

    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        window = sliding_window_for_layer(cfg, i)
        cos, sin = rope_cos_sin(rope_inv_freq(cfg, window is not None), t_n)
        mask = additive_mask(t_n, window)

        residual = h
        x = rms_norm(h, w[p + "input_layernorm.weight"], eps, gemma)
        if family(cfg) == "phi3":
            # Phi3Attention: one qkv_proj; query, key and value are its
            # output's first n_heads*hd, next n_kv*hd and last n_kv*hd columns.
            qkv = linear(x, w[p + "self_attn.qkv_proj.weight"])
            q_end = n_heads * hd
            k_end = q_end + n_kv * hd
            q, k, v = qkv[..., :q_end], qkv[..., q_end:k_end], qkv[..., k_end:]
        else:
            bias = has_qkv_bias(cfg)
            q = linear(x, w[p + "self_attn.q_proj.weight"], w[p + "self_attn.q_proj.bias"] if bias else None)
            k = linear(x, w[p + "self_attn.k_proj.weight"], w[p + "self_attn.k_proj.bias"] if bias else None)
            v = linear(x, w[p + "self_attn.v_proj.weight"], w[p + "self_attn.v_proj.bias"] if bias else None)
        q = q.view(b_n, t_n, n_heads, hd)
        k = k.view(b_n, t_n, n_kv, hd)
        v = v.view(b_n, t_n, n_kv, hd)
        if has_qk_norm(cfg):  # per head, over head_dim, before rope
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps, gemma)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps, gemma)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)

        a = attention_batched(q, k, v, scale, attn_cap, mask)
        if check_attention:
            a2 = attention_loops(q, k, v, scale, attn_cap, window)
            assert torch.allclose(a, a2, rtol=1e-10, atol=1e-12), f"layer {i}: loop attention differs"
        a = a.transpose(1, 2).reshape(b_n, t_n, n_heads * hd)
        a = linear(a, w[p + "self_attn.o_proj.weight"], w[p + "self_attn.o_proj.bias"] if has_o_bias(cfg) else None)

        if gemma:
            a = rms_norm(a, w[p + "post_attention_layernorm.weight"], eps, True)
            h = residual + a
            residual = h
            x = rms_norm(h, w[p + "pre_feedforward_layernorm.weight"], eps, True)
        else:
            h = residual + a
            residual = h
            x = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps, False)

        if family(cfg) == "phi3":
            # Phi3MLP: gate, up_states = gate_up_proj(x).chunk(2, dim=-1).
            gate, up = linear(x, w[p + "mlp.gate_up_proj.weight"]).chunk(2, dim=-1)
            m = up * act(gate)
        else:
            m = act(linear(x, w[p + "mlp.gate_proj.weight"])) * linear(x, w[p + "mlp.up_proj.weight"])
        m = linear(m, w[p + "mlp.down_proj.weight"])
        if gemma:
            m = rms_norm(m, w[p + "post_feedforward_layernorm.weight"], eps, True)
        h = residual + m
        hidden_states.append(h)

    final_hidden = rms_norm(h, w["model.norm.weight"], eps, gemma)
    head = w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    logits = linear(final_hidden, head)
    if final_cap is not None:
        logits = torch.tanh(logits / final_cap) * final_cap
    return {
        "hidden_states": torch.stack(hidden_states),
        "final_hidden": final_hidden,
        "logits": logits,
    }


# --------------------------------------------------------------------------
# Random weights and inputs
# --------------------------------------------------------------------------

LINEAR_STD = 0.2
EMBED_STD = 0.3
GEMMA_EMBED_STD = 0.1   # the embedding is multiplied by sqrt(hidden) afterwards
NORM_STD = 0.1          # norm weights: 1 + N(0, 0.1), or N(0, 0.1) for Gemma's (1 + w)


def tensor_shapes(cfg):
    """Every tensor of the checkpoint, in Hugging Face names, with its shape and kind."""
    hid = cfg["hidden_size"]
    inter = cfg["intermediate_size"]
    hd = head_dim(cfg)
    nq = cfg["num_attention_heads"] * hd
    nkv = cfg["num_key_value_heads"] * hd
    gemma = is_gemma(cfg)
    fused = family(cfg) == "phi3"
    shapes = [("model.embed_tokens.weight", (cfg["vocab_size"], hid), "embed")]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes.append((p + "input_layernorm.weight", (hid,), "norm"))
        if fused:
            shapes.append((p + "self_attn.qkv_proj.weight", (nq + 2 * nkv, hid), "linear"))
        else:
            shapes.append((p + "self_attn.q_proj.weight", (nq, hid), "linear"))
            shapes.append((p + "self_attn.k_proj.weight", (nkv, hid), "linear"))
            shapes.append((p + "self_attn.v_proj.weight", (nkv, hid), "linear"))
        if has_qkv_bias(cfg):
            shapes.append((p + "self_attn.q_proj.bias", (nq,), "linear"))
            shapes.append((p + "self_attn.k_proj.bias", (nkv,), "linear"))
            shapes.append((p + "self_attn.v_proj.bias", (nkv,), "linear"))
        shapes.append((p + "self_attn.o_proj.weight", (hid, nq), "linear"))
        if has_o_bias(cfg):
            shapes.append((p + "self_attn.o_proj.bias", (hid,), "linear"))
        if has_qk_norm(cfg):
            shapes.append((p + "self_attn.q_norm.weight", (hd,), "norm"))
            shapes.append((p + "self_attn.k_norm.weight", (hd,), "norm"))
        shapes.append((p + "post_attention_layernorm.weight", (hid,), "norm"))
        if gemma:
            shapes.append((p + "pre_feedforward_layernorm.weight", (hid,), "norm"))
            shapes.append((p + "post_feedforward_layernorm.weight", (hid,), "norm"))
        if fused:
            shapes.append((p + "mlp.gate_up_proj.weight", (2 * inter, hid), "linear"))
        else:
            shapes.append((p + "mlp.gate_proj.weight", (inter, hid), "linear"))
            shapes.append((p + "mlp.up_proj.weight", (inter, hid), "linear"))
        shapes.append((p + "mlp.down_proj.weight", (hid, inter), "linear"))
    shapes.append(("model.norm.weight", (hid,), "norm"))
    if not cfg["tie_word_embeddings"]:
        shapes.append(("lm_head.weight", (cfg["vocab_size"], hid), "linear"))
    return shapes


def make_model(cfg, seed):
    """Random float32 weights and [BATCH, SEQ] input ids from a fixed torch seed."""
    gen = torch.Generator().manual_seed(seed)
    gemma = is_gemma(cfg)
    weights = {}
    for name, shape, kind in tensor_shapes(cfg):
        r = torch.randn(shape, generator=gen, dtype=torch.float32)
        if kind == "embed":
            weights[name] = r * (GEMMA_EMBED_STD if gemma else EMBED_STD)
        elif kind == "norm":
            weights[name] = r * NORM_STD + (0.0 if gemma else 1.0)
        else:
            weights[name] = r * LINEAR_STD
    ids = torch.randint(0, cfg["vocab_size"], (BATCH, SEQ), generator=gen, dtype=torch.int64)
    ids[0, 0] = cfg["bos_token_id"]  # first sequence starts like a real prompt
    return weights, ids


def build(name):
    """Everything for one fixture directory: {file name: bytes}, plus the pieces."""
    config_fn, seed = MODELS[name]
    cfg = config_fn()
    weights, ids = make_model(cfg, seed)
    out = forward(cfg, weights, ids)
    reference = {
        "input_ids": ids.to(torch.float32),
        "logits": out["logits"].to(torch.float32),
        "hidden_states": out["hidden_states"].to(torch.float32),
        "final_hidden": out["final_hidden"].to(torch.float32),
    }
    files = {
        "config.json": (json.dumps(cfg, indent=2, sort_keys=True) + "\n").encode("utf-8"),
        "model.safetensors": safetensors_bytes(weights, {"format": "pt"}),
        "reference.safetensors": safetensors_bytes(reference, {"format": "pt"}),
    }
    return files, cfg, weights, ids, out


# --------------------------------------------------------------------------
# Self-checks
# --------------------------------------------------------------------------

def check_rope_against_complex():
    """rotate-half RoPE == multiplying the complex numbers (x_j + i x_{j+hd/2}) by e^{i p f_j}."""
    gen = torch.Generator().manual_seed(7)
    hd, t_n = 16, SEQ
    x = torch.randn(1, 1, t_n, hd, generator=gen, dtype=COMPUTE)
    inv = default_inv_freq(hd, 10000.0)
    cos, sin = rope_cos_sin(inv, t_n)
    got = apply_rope(x, cos, sin)
    z = torch.complex(x[..., : hd // 2], x[..., hd // 2:])
    for p in range(t_n):
        for j in range(hd // 2):
            angle = p * (10000.0 ** (-2.0 * j / hd))
            z[0, 0, p, j] = z[0, 0, p, j] * complex(math.cos(angle), math.sin(angle))
    want = torch.cat((z.real, z.imag), dim=-1)
    assert torch.allclose(got, want, atol=1e-12), "rope: rotate-half differs from complex rotation"


def check_llama3_regimes(cfg):
    """The llama fixture's rope_scaling must exercise all three llama3 regimes,
    and each frequency must match the formula evaluated one scalar at a time."""
    s = cfg["rope_scaling"]
    base = default_inv_freq(head_dim(cfg), cfg["rope_theta"])
    scaled = llama3_inv_freq(base, s)
    regimes = set()
    for f, g in zip(base.tolist(), scaled.tolist()):
        wavelen = 2 * math.pi / f
        if wavelen < s["original_max_position_embeddings"] / s["high_freq_factor"]:
            regimes.add("high")
            want = f
        elif wavelen > s["original_max_position_embeddings"] / s["low_freq_factor"]:
            regimes.add("low")
            want = f / s["factor"]
        else:
            regimes.add("medium")
            smooth = (s["original_max_position_embeddings"] / wavelen - s["low_freq_factor"]) / (
                s["high_freq_factor"] - s["low_freq_factor"])
            want = (1 - smooth) * f / s["factor"] + smooth * f
        assert math.isclose(g, want, rel_tol=1e-12), "llama3 inv_freq mismatch"
    assert regimes == {"high", "medium", "low"}, f"llama3 regimes exercised: {regimes}"


def check_norm_invariant():
    """RMSNorm with unit gain gives rows of root-mean-square 1 (up to eps)."""
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(3, 40, generator=gen, dtype=COMPUTE) * 5
    for plus_one, wt in ((False, torch.ones(40)), (True, torch.zeros(40))):
        y = rms_norm(x, wt, 1e-6, plus_one)
        rms = y.pow(2).mean(-1).sqrt()
        assert torch.allclose(rms, torch.ones(3, dtype=COMPUTE), atol=1e-6), "rms norm invariant"


def check_model(name, cfg, weights, ids, out):
    """Invariants of one model's forward pass."""
    # 1. Attention: batched matmul (HF eager) vs explicit loops, every layer.
    again = forward(cfg, weights, ids, check_attention=True)
    assert torch.equal(again["logits"], out["logits"]), f"{name}: forward not deterministic"

    # 2. Causality: changing the last token changes nothing before it.
    ids2 = ids.clone()
    ids2[:, -1] = (ids2[:, -1] + 1) % cfg["vocab_size"]
    out2 = forward(cfg, weights, ids2)
    assert torch.allclose(out2["logits"][:, :-1], out["logits"][:, :-1], rtol=0, atol=1e-12), f"{name}: not causal"
    assert not torch.allclose(out2["logits"][:, -1], out["logits"][:, -1]), f"{name}: last token ignored"

    # 3. Sliding window: changing token 0 leaves layer 0's output at positions >= W
    #    unchanged exactly when layer 0 slides (and changes them when it does not).
    ids3 = ids.clone()
    ids3[:, 0] = (ids3[:, 0] + 1) % cfg["vocab_size"]
    out3 = forward(cfg, weights, ids3)
    window = sliding_window_for_layer(cfg, 0)
    start = window if window is not None else 1
    same = torch.allclose(out3["hidden_states"][1][:, start:], out["hidden_states"][1][:, start:], rtol=0, atol=1e-12)
    assert same == (window is not None), f"{name}: sliding window of layer 0"

    # 4. Heads: final_hidden is the final norm of the last block output and the
    #    logits are its projection (softcapped for Gemma 2).
    gemma = is_gemma(cfg)
    fh = rms_norm(out["hidden_states"][-1], weights["model.norm.weight"], cfg["rms_norm_eps"], gemma)
    assert torch.equal(fh, out["final_hidden"]), f"{name}: final_hidden"
    if cfg.get("final_logit_softcapping"):
        assert out["logits"].abs().max() < cfg["final_logit_softcapping"], f"{name}: softcap"

    # 5. Tying: lm_head.weight only when untied.
    assert ("lm_head.weight" in weights) != cfg["tie_word_embeddings"], f"{name}: lm_head presence"


def check_phi3_is_mistral_with_fused_weights(cfg, weights, ids, out):
    """Phi-3 computes what Mistral computes from the same weights unfused:
    qkv_proj's rows split q | k | v, gate_up_proj's rows split gate | up."""
    nq = cfg["num_attention_heads"] * head_dim(cfg)
    nkv = cfg["num_key_value_heads"] * head_dim(cfg)
    split = {}
    for name, t in weights.items():
        if name.endswith("self_attn.qkv_proj.weight"):
            p = name[: -len("qkv_proj.weight")]
            q, k, v = t.split([nq, nkv, nkv], dim=0)
            split.update({p + "q_proj.weight": q, p + "k_proj.weight": k, p + "v_proj.weight": v})
        elif name.endswith("mlp.gate_up_proj.weight"):
            p = name[: -len("gate_up_proj.weight")]
            gate, up = t.split([cfg["intermediate_size"]] * 2, dim=0)
            split.update({p + "gate_proj.weight": gate, p + "up_proj.weight": up})
        else:
            split[name] = t
    as_mistral = dict(cfg, architectures=["MistralForCausalLM"], model_type="mistral")
    got = forward(as_mistral, split, ids)
    assert torch.allclose(got["logits"], out["logits"], rtol=0, atol=1e-12), "phi3: differs from unfused mistral"


def check_safetensors_roundtrip(files, weights):
    back = read_safetensors(files["model.safetensors"])
    assert set(back) == set(weights), "safetensors: names differ"
    for k, t in weights.items():
        assert torch.equal(back[k], t), f"safetensors: {k} differs after round trip"


def summarize(name, cfg, out, ids):
    logits = out["logits"]
    print(f"{name:13s} L={cfg['num_hidden_layers']} H={cfg['hidden_size']} V={cfg['vocab_size']} "
          f"hidden_states={tuple(out['hidden_states'].shape)} logits={tuple(logits.shape)} "
          f"|logit|max={logits.abs().max():.3f} std={logits.std():.3f} "
          f"|h|max={out['hidden_states'].abs().max():.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="regenerate in memory and compare with the files on disk; write nothing")
    parser.add_argument("--quick", action="store_true", help="skip the slow self-checks")
    args = parser.parse_args()
    torch.set_num_threads(1)  # same summation order every run

    if not args.quick:
        check_rope_against_complex()
        check_norm_invariant()
        check_llama3_regimes(llama_config())

    mismatches = []
    for name in MODELS:
        files, cfg, weights, ids, out = build(name)
        summarize(name, cfg, out, ids)
        if not args.quick:
            check_model(name, cfg, weights, ids, out)
            if family(cfg) == "phi3":
                check_phi3_is_mistral_with_fused_weights(cfg, weights, ids, out)
            check_safetensors_roundtrip(files, weights)
            files_again = build(name)[0]
            assert files_again == files, f"{name}: same seed gave different bytes"
        directory = os.path.join(HERE, name)
        for fname, data in files.items():
            path = os.path.join(directory, fname)
            if args.check:
                try:
                    with open(path, "rb") as fh:
                        on_disk = fh.read()
                except OSError:
                    on_disk = None
                if on_disk != data:
                    mismatches.append(path)
            else:
                os.makedirs(directory, exist_ok=True)
                with open(path, "wb") as fh:
                    fh.write(data)
    if args.check:
        if mismatches:
            print("differs from a fresh build:\n  " + "\n  ".join(mismatches))
            sys.exit(1)
        print("all fixtures match a fresh build")
    else:
        print("wrote fixtures under", HERE)


if __name__ == "__main__":
    main()
