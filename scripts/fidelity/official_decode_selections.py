#!/usr/bin/env python3
"""Runs the official selection code of decode selectors on a fixture's captured keys and query
and writes the keys each selects, as fixtures for tests/methods/official_decode_fixture_test.cc.

The decode inputs are those of a prefill fixture (tests/data/official/NAME: q.npy float16
[heads][n][64], k.npy float16 [1][n][64]): for a context of t tokens the cache holds keys
[0, t) and the decode query is row t - 1 of every query head (the newest token, whose own key
is the last in the cache). Both sides compute in fp32 on the float16 values.

The official repositories are not part of longsparse: pass their checkouts (docs/fidelity.md
names the commits). Each official function is imported from its file and run unchanged; only
what it needs from a model is supplied here:
  --quest PATH         mit-han-lab/Quest evaluation/quest_attention.py: forward (the torch
                       path of Quest's accuracy evaluations) with local_heavy_hitter_mask. The
                       projections return the captured query / key (identity RoPE: the inputs
                       are post-RoPE); the mask local_heavy_hitter_mask returns is recorded.
  --double-sparse PATH andy-yang-1/DoubleSparse LongBench/modify_llama.py:
                       LlamaAttention_heavy_hitter.forward with label_bits 16 (no label
                       quantisation), output_attentions=True: the keys with nonzero weight.
  --shadowkv PATH      bytedance/ShadowKV models/kv_cache.py: ShadowKVCache (the accuracy
                       class) prefill_kv_cache + get_retrieval_position_ids, dtype float32;
                       its CUDA imports (models.tensor_op, kernels) are stubbed, unused there,
                       and torch.cuda.Stream is a no-op.
Writes NAME/decode_selections.json: per case, per query head (or per KV head for a group),
the selected key positions as sorted ranges [begin, end).

Usage:
  official_decode_selections.py --fixture tests/data/official/passkey1334 --tokens 1334,1024 \
      --quest /tmp/fid/Quest --double-sparse /tmp/fid/DoubleSparse --shadowkv /tmp/fid/ShadowKV
"""
import argparse
import importlib.util
import json
import subprocess
import sys
import types

import numpy as np
import torch


def git_commit(path):
    return subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def load_file(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ranges(positions):
    """Sorted positions -> [[begin, end), ...]."""
    out = []
    for p in sorted(int(x) for x in positions):
        if out and out[-1][1] == p:
            out[-1][1] = p + 1
        else:
            out.append([p, p + 1])
    return out


class Projections:
    """What a decode forward needs of a model: projections returning the captured states."""

    def __init__(self, q, k_new, heads, dim):
        self.num_heads, self.head_dim = heads, dim
        self.num_key_value_heads, self.num_key_value_groups = 1, heads
        self.hidden_size = heads * dim
        self.q_proj = lambda h: q.reshape(1, 1, heads * dim)
        self.k_proj = lambda h: k_new.reshape(1, 1, dim)
        self.v_proj = lambda h: torch.zeros(1, 1, dim)
        self.o_proj = lambda x: x


def identity_rope(dim):
    return torch.ones(1, 1, dim), torch.zeros(1, 1, dim)


# --- Quest -------------------------------------------------------------------------------

def quest_select(module, q, keys, budget, chunk=16):
    """q [heads][dim] (the query of the newest token), keys [t][dim]: per head, the positions
    Quest's evaluation forward lets the query attend to."""
    heads, dim = q.shape
    t = keys.shape[0]
    masks = []
    original = module.local_heavy_hitter_mask

    def recording(*args, **kwargs):
        mask = original(*args, **kwargs)
        masks.append(mask.clone())
        return mask

    module.local_heavy_hitter_mask = recording
    try:
        self = Projections(q, keys[-1], heads, dim)
        self.layer_id = 2  # its first two layers are dense; any later layer selects
        self.token_budget, self.chunk_size = budget, chunk
        self.rotary_emb = lambda v, position_ids: identity_rope(dim)
        past = (keys[:-1].reshape(1, 1, t - 1, dim), torch.zeros(1, 1, t - 1, dim))
        module.forward(self, torch.zeros(1, 1, heads * dim), attention_mask=None,
                       position_ids=torch.tensor([[t - 1]]), past_key_value=past, use_cache=True)
    finally:
        module.local_heavy_hitter_mask = original
    assert len(masks) == 1
    # forward then applies tril(diagonal=t - 1) to the 1 x t row: every key stays.
    mask = masks[0][0, :, 0]  # [heads][t]
    return [ranges(torch.nonzero(mask[h]).flatten().tolist()) for h in range(heads)]


# --- Double Sparsity ---------------------------------------------------------------------

class AppendCache:
    """transformers' Cache.update for one layer: the cached keys followed by the new ones."""

    def __init__(self, k, v):
        self.k, self.v = k, v

    def update(self, k, v, layer_idx, cache_kwargs=None):
        return torch.cat([self.k, k], dim=2), torch.cat([self.v, v], dim=2)


def double_sparse_select(module, q, keys, heavy_const, sorted_channel, label_channels):
    """Per query head, the keys LlamaAttention_heavy_hitter.forward gives a nonzero weight.
    sorted_channel [heads][dim]: each head's channels, largest statistic first."""
    heads, dim = q.shape
    t = keys.shape[0]
    self = Projections(q, keys[-1], heads, dim)
    self.config = types.SimpleNamespace(pretraining_tp=1)
    self.layer_idx = 2  # layers 0 and 1 are dense in the official forward
    self.sorted_channel = torch.tensor(sorted_channel, dtype=torch.long)
    self.group_factor = dim // label_channels  # outlier_num = head_dim // group_factor channels
    self.label_bits = 16
    self.heavy_const = heavy_const
    cache = AppendCache(keys[:-1].reshape(1, 1, t - 1, dim), torch.zeros(1, 1, t - 1, dim))
    _, weights, _ = module.LlamaAttention_heavy_hitter.forward(
        self, torch.zeros(1, 1, heads * dim), attention_mask=None, position_ids=torch.tensor([[t - 1]]),
        past_key_value=cache, output_attentions=True, use_cache=True, position_embeddings=identity_rope(dim))
    out = []
    for h in range(heads):
        kept = torch.nonzero(weights[0, h, 0] > 0).flatten().tolist()
        assert len(kept) == min(heavy_const, t), (len(kept), heavy_const)  # no weight underflowed to 0
        out.append(ranges(kept))
    return out


def qk_channel_order(q, k):
    """The official calibration's "qk" statistic on the fixture itself: per query head, the
    channels by mean |q_c·k_c| over every token with its own key, largest first (our input to
    the official selection, as a channel config file would be)."""
    stat = (q * k.unsqueeze(0)).abs().mean(dim=1)  # [heads][dim]
    return [torch.sort(stat[h], descending=True, stable=True).indices.tolist() for h in range(q.shape[0])], stat


# --- ShadowKV ----------------------------------------------------------------------------

def load_shadowkv(root):
    sys.modules.setdefault("models", types.ModuleType("models"))
    sys.modules["models.tensor_op"] = types.SimpleNamespace(batch_gather_gemm_rotary_pos_emb_cuda=None)
    sys.modules["kernels"] = types.SimpleNamespace(shadowkv=None)
    torch.cuda.Stream = lambda *args, **kwargs: None
    return load_file("shadowkv_kv_cache", f"{root}/models/kv_cache.py")


def shadowkv_select(module, q, keys, sparse_budget):
    """ShadowKV after prefilling keys [0, t - 1) and decoding the newest token: its selected
    chunks (per KV head: one, the group's), outlier chunks and exact tail."""
    heads, dim = q.shape
    t = keys.shape[0]
    prompt = t - 1
    config = types.SimpleNamespace(num_attention_heads=heads, num_key_value_heads=1, hidden_size=heads * dim,
                                   num_hidden_layers=1)
    cache = module.ShadowKVCache(config, batch_size=1, max_length=t + 8, device="cpu", dtype=torch.float32,
                                 sparse_budget=sparse_budget, chunk_size=8, rank=160)
    k = keys[:prompt].reshape(1, 1, prompt, dim)
    cache.prefill_kv_cache(torch.zeros_like(k), 0, k)
    positions = cache.get_retrieval_position_ids(0, q.reshape(1, heads, 1, dim))[0, 0]
    landmarks = set(cache.k_landmark_idx[0, 0, 0].tolist())
    outliers = [c for c in range(cache.chunks) if c not in landmarks]
    return {
        "selected": ranges(positions.tolist()),
        "outlier_chunks": outliers,
        # prefill_local (the local chunks and the prompt's partial chunk) and the generated token
        "exact_tail": [cache.chunks * cache.chunk_size, t],
        "chunks": cache.chunks,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--tokens", default="")
    ap.add_argument("--quest")
    ap.add_argument("--double-sparse")
    ap.add_argument("--shadowkv")
    args = ap.parse_args()
    torch.set_grad_enabled(False)

    q_all = torch.from_numpy(np.load(f"{args.fixture}/q.npy").astype(np.float32))  # [heads][n][dim]
    k_all = torch.from_numpy(np.load(f"{args.fixture}/k.npy").astype(np.float32))[0]  # [n][dim]
    heads, n, dim = q_all.shape
    with open(f"{args.fixture}/selections.json") as f:
        source = json.load(f)["source"]
    tokens = [int(x) for x in args.tokens.split(",")] if args.tokens else [n]
    out = {"format": "longsparse-official-decode-selections", "version": 1,
           "source": dict(source, decode="for a context of t tokens: keys [0, t) of k.npy, the query row t - 1 "
                                         "of every head of q.npy"),
           "official": {}, "cases": []}

    if args.quest:
        out["official"]["quest"] = {
            "repository": "github.com/mit-han-lab/Quest", "commit": git_commit(args.quest),
            "function": "evaluation/quest_attention.py:forward (local_heavy_hitter_mask), chunk_size 16",
            "run": "per query head (repeat_kv); layer_id 2; the mask local_heavy_hitter_mask returns"}
        module = load_file("quest_attention", f"{args.quest}/evaluation/quest_attention.py")
        for t in tokens:
            for budget in (64, 256, 512):
                out["cases"].append({"method": "quest", "tokens": t, "group": "per_head",
                                     "params": {"token_budget": budget, "chunk_size": 16},
                                     "heads": quest_select(module, q_all[:, t - 1], k_all[:t], budget)})

    if args.double_sparse:
        out["official"]["double-sparsity"] = {
            "repository": "github.com/andy-yang-1/DoubleSparse", "commit": git_commit(args.double_sparse),
            "function": "LongBench/modify_llama.py:LlamaAttention_heavy_hitter.forward",
            "run": "per query head (repeat_kv); layer_idx 2; label_bits 16 (unquantised labels); sorted_channel "
                   "from the qk statistic of the fixture's own rows (channels_per_head); the keys given nonzero "
                   "weight (output_attentions)"}
        module = load_file("ds_modify_llama", f"{args.double_sparse}/LongBench/modify_llama.py")
        for t in tokens:
            order, _ = qk_channel_order(q_all[:, :t], k_all[:t])
            for label_channels in (8, 16):
                for heavy in (128, 256, 512):
                    out["cases"].append({
                        "method": "double-sparsity", "tokens": t, "group": "per_head",
                        "params": {"heavy_const": heavy, "label_channels": label_channels},
                        "channels_per_head": [o[:label_channels] for o in order],
                        "heads": double_sparse_select(module, q_all[:, t - 1], k_all[:t], heavy, order,
                                                      label_channels)})

    if args.shadowkv:
        out["official"]["shadowkv"] = {
            "repository": "github.com/bytedance/ShadowKV", "commit": git_commit(args.shadowkv),
            "function": "models/kv_cache.py:ShadowKVCache.prefill_kv_cache, get_retrieval_position_ids",
            "run": "chunk_size 8, local_chunk 4, outlier_chunk 48, dtype float32; prefill of keys [0, t - 1), "
                   "the query of token t - 1; scores scaled by 1/sqrt(128) as written (any head dim); per_head: "
                   "each query head alone (MHA), gqa: the heads as one group (max over the group)"}
        module = load_shadowkv(args.shadowkv)
        for t in tokens:
            for sparse_budget in (128, 256, 512):
                for h in range(heads):
                    case = shadowkv_select(module, q_all[h:h + 1, t - 1], k_all[:t], sparse_budget)
                    out["cases"].append(dict({"method": "shadowkv", "tokens": t, "group": "per_head", "head": h,
                                              "params": {"sparse_budget": sparse_budget}}, **case))
                case = shadowkv_select(module, q_all[:, t - 1], k_all[:t], sparse_budget)
                out["cases"].append(dict({"method": "shadowkv", "tokens": t, "group": "gqa",
                                          "params": {"sparse_budget": sparse_budget}}, **case))

    with open(f"{args.fixture}/decode_selections.json", "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"{len(out['cases'])} cases -> {args.fixture}/decode_selections.json")


if __name__ == "__main__":
    main()
