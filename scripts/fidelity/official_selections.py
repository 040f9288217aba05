#!/usr/bin/env python3
"""Runs the official selection code of sparse prefill methods on captured Q/K and writes the
index sets they select, as fixtures for tests/methods/official_fixture_test.cc.

The official repositories are not part of longsparse: pass their checkouts with --flexprefill,
--xattention and --minference (docs/fidelity.md names the commits). Their GPU-only pieces are
replaced by CPU equivalents defined here (FlexPrefill's Triton mean pool over blocks of K; the
`.to("cuda")` moves of xattn_estimate become no-ops; what MInference's CUDA index conversion
computes is done by official_vertical_slash_keys; the attention kernels are never run); the
selection logic itself is imported and run unchanged.

Usage:
  official_selections.py --capture DIR --layer 15 --heads 0,1 [--tokens N] --out tests/data/official/NAME \
      --flexprefill PATH --xattention PATH
writes NAME/q.npy and NAME/k.npy (float16: the query heads given and their KV head) and
NAME/selections.json (per method spec and head: the key blocks of every query block).
"""
import argparse
import importlib.util
import json
import math
import subprocess
import sys
import types

import numpy as np
import torch


def git_commit(path):
    return subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def load_flexprefill(root):
    import transformers.utils  # noqa: F401 (asked whether flash-attn is installed; it is not)
    spec = importlib.util.spec_from_file_location("flex_prefill_attention",
                                                  f"{root}/flex_prefill/ops/flex_prefill_attention.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def bnhd_mean_pool(x, kernel_size, pool_type="avg"):
        # CPU stand-in for triton_bnhd_pool(pool_type="avg"): x [b][n][h][d] -> [b][ceil(n/k)][h][d],
        # each block averaged over the rows it has (the kernel divides by cur_block_size_n).
        assert pool_type == "avg"
        b, n, h, d = x.shape
        blocks = math.ceil(n / kernel_size)
        out = torch.empty(b, blocks, h, d, dtype=x.dtype)
        for i in range(blocks):
            out[:, i] = x[:, i * kernel_size:(i + 1) * kernel_size].mean(1)
        return out

    module.triton_bnhd_pool = bnhd_mean_pool
    return module


def load_xattention(root):
    # xattn_estimate's torch path (use_triton=False) moves tensors with .to("cuda"); on the CPU
    # those moves are no-ops. The Triton kernels and block_sparse_attn are imported but unused.
    sys.modules.setdefault("block_sparse_attn", types.SimpleNamespace(block_sparse_attn_func=None))
    original_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        if args and isinstance(args[0], str) and args[0].startswith("cuda"):
            return self
        return original_to(self, *args, **kwargs)

    torch.Tensor.to = to
    sys.path.insert(0, root)
    from xattn.src import Xattention  # noqa: E402
    return Xattention


def load_minference(root):
    # Loads minference.modules.minference_forward without the package's __init__ (which patches
    # transformers models). Tensors the module creates on "cuda" are created on the CPU; the
    # compiled extension minference.cuda is never called (official_vertical_slash_keys below).
    original_arange = torch.arange

    def arange(*args, **kwargs):
        if kwargs.get("device") == "cuda":
            kwargs["device"] = "cpu"
        return original_arange(*args, **kwargs)

    torch.arange = arange
    for name, path in [("minference", "minference"), ("minference.modules", "minference/modules"),
                       ("minference.ops", "minference/ops")]:
        package = types.ModuleType(name)
        package.__path__ = [f"{root}/{path}"]
        sys.modules[name] = package
    # Packages the module imports for other methods (LeanK's tilelang kernels, ...): stand-ins
    # that are never called by the selections run here.
    from unittest import mock
    for name in ["tilelang", "tilelang.language", "minference.modules.leank"]:
        sys.modules.setdefault(name, mock.MagicMock(name=name))
    cuda = types.ModuleType("minference.cuda")
    cuda.convert_vertical_slash_indexes = None  # never called: vertical_slash_sparse_attention is replaced
    sys.modules["minference.cuda"] = cuda
    return importlib.import_module("minference.modules.minference_forward")


def official_vertical_slash_keys(n, v_idx, s_idx, block=64):
    """What MInference's CUDA index conversion (csrc/vertical_slash_index.cu) hands its attention
    kernel, computed on the CPU. Per block of 64 queries ending at `end`: offset d (< end) covers
    the 64-key window ending at max(end - d, 64); in descending offsets (ascending windows), a
    window ending more than 64 keys past the current range starts a new range, one ending up to
    64 keys past it grows the range by 64 keys. Verticals (ascending) outside every range and
    before the last range's end are gathered columns."""
    rows = []
    for start in range(0, n, block):
        end = start + block
        ranges = []
        for d in s_idx:
            if d >= end:
                continue
            e = max(end - d, block)
            if not ranges or e > ranges[-1][1] + block:
                ranges.append([e - block, e])
            elif e > ranges[-1][1]:
                ranges[-1][1] += block
        columns = [int(v) for v in v_idx
                   if v < ranges[-1][1] and not any(a <= v < b for a, b in ranges)]
        rows.append({"ranges": [[int(a), int(b)] for a, b in ranges], "columns": columns})
    return rows


def vertical_slash_keys(module, q, k, layer, vertical, slash):
    """Per head, per 64-query block: the official key ranges and columns (minference_prefill_kernel's
    vertical_and_slash_kernel, then the index conversion of the CUDA kernel)."""
    heads, n, dim = q.shape
    group = heads // k.shape[0]
    captured = {}

    def capture(query, key, value, v_idx, s_idx, block_size_M=64, block_size_N=64):
        # What vertical_slash_sparse_attention does with the indices before its kernels.
        captured["v"] = v_idx.to(torch.int32).reshape(-1).sort(descending=False)[0].tolist()
        captured["s"] = s_idx.to(torch.int32).reshape(-1).sort(descending=True)[0].tolist()
        return query

    module.vertical_slash_sparse_attention = capture
    out = []
    for h in range(heads):
        qt = torch.from_numpy(q[h]).reshape(1, 1, n, dim)
        kt = torch.from_numpy(k[h // group]).reshape(1, 1, n, dim)
        config = {"best_pattern": {layer: {str(h): ("vertical_and_slash", vertical, slash, 1)}}}
        module.minference_prefill_kernel(qt, kt, kt, h, layer, config)
        out.append(official_vertical_slash_keys(n, captured["v"], captured["s"]))
    return out


def block_sparse_blocks(root, q, k, top_k):
    """Per head, per 64-query block: the key blocks of _build_block_index (through
    block_sparse_attention's padding), causal ones only."""
    ops = importlib.import_module("minference.ops.block_sparse_flash_attention")
    captured = {}

    def capture(query, key, value, seqlens, block_index, *args):
        captured["index"] = block_index
        return query

    ops._triton_block_sparse_attention = capture
    heads, n, dim = q.shape
    group = heads // k.shape[0]
    out = []
    for h in range(heads):
        qt = torch.from_numpy(q[h]).reshape(1, 1, n, dim)
        kt = torch.from_numpy(k[h // group]).reshape(1, 1, n, dim)
        ops.block_sparse_attention(qt, kt, kt, top_k)
        index = captured["index"][0, 0].tolist()
        blocks = math.ceil(n / 64)
        out.append([sorted({b for b in index[qb] if b <= qb}) for qb in range(blocks)])
    return out


def flexprefill_blocks(module, q, k, block, gamma, tau, min_budget, max_budget):
    """q [H][n][d], k [G][n][d] -> per head: list of key-block lists per query block."""
    heads, n, dim = q.shape
    qt = torch.from_numpy(q).permute(1, 0, 2).unsqueeze(0).contiguous()  # [1][n][H][d]
    kt = torch.from_numpy(k).permute(1, 0, 2).unsqueeze(0).contiguous()
    blocks = math.ceil(n / block)
    max_budget = 2147483647 if max_budget == 0 else max_budget
    if n <= max(2 * block, math.ceil(min_budget / block) * block):
        return None  # the official code runs dense attention
    idx = module.get_active_blocks(qt, kt, kt, block, gamma, math.ceil(min_budget / block),
                                   math.ceil(max_budget / block), tau, False)
    out = []
    for h in range(heads):
        rows = [[] for _ in range(blocks)]
        for flat in idx[0][h].tolist():
            qb, kb = divmod(int(flat), blocks)
            if kb <= qb:
                rows[qb].append(kb)
        out.append([sorted(set(r)) for r in rows])
    return out


def xattention_blocks(module, q, k, block, stride, threshold):
    heads, n, dim = q.shape
    group = heads // k.shape[0]
    qt = torch.from_numpy(q).unsqueeze(0)  # [1][H][n][d]
    kt = torch.from_numpy(np.repeat(k, group, axis=0)).unsqueeze(0)
    _, masks = module.xattn_estimate(qt, kt, block_size=block, stride=stride, threshold=threshold,
                                     use_triton=False, chunk_size=16384, select_mode="inverse")
    blocks = math.ceil(n / block)
    masks = masks[0, :, :blocks, :blocks].numpy()
    return [[[kb for kb in range(qb + 1) if masks[h, qb, kb]] for qb in range(blocks)] for h in range(heads)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capture", required=True)
    ap.add_argument("--layer", type=int, required=True)
    ap.add_argument("--heads", required=True, help="query heads of one KV head, e.g. 0,1")
    ap.add_argument("--tokens", type=int, default=0, help="keep the first N tokens (a capture's prefix is the capture of the prefix)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--flexprefill", required=True)
    ap.add_argument("--xattention", required=True)
    ap.add_argument("--minference", required=True)
    args = ap.parse_args()

    root = f"{args.capture}/layer{args.layer}"
    manifest = json.load(open(f"{args.capture}/manifest.json"))
    q_all, k_all = np.load(f"{root}/q.npy"), np.load(f"{root}/k.npy")
    heads = [int(h) for h in args.heads.split(",")]
    group = q_all.shape[0] // k_all.shape[0]
    kv = {h // group for h in heads}
    assert len(kv) == 1, "the heads must share one KV head"
    # The fixture holds float16 values; both sides run on exactly these values (as float32).
    n = args.tokens or q_all.shape[1]
    q = q_all[heads, :n].astype(np.float16)
    k = k_all[sorted(kv), :n].astype(np.float16)
    import os
    os.makedirs(args.out, exist_ok=True)
    np.save(f"{args.out}/q.npy", q)
    np.save(f"{args.out}/k.npy", k)
    q32, k32 = q.astype(np.float32), k.astype(np.float32)

    flex = load_flexprefill(args.flexprefill)
    xattn = load_xattention(args.xattention)
    cases = []
    for gamma, tau, min_budget in [(0.9, 0.1, 512), (0.95, 0.1, 1024), (0.9, 0.0, 128), (0.8, 1.0, 128)]:
        spec = f"flexprefill:gamma={gamma},tau={tau},min_budget={min_budget}"
        with torch.no_grad():
            rows = flexprefill_blocks(flex, q32, k32, 128, gamma, tau, min_budget, 0)
        cases.append({"spec": spec, "dense": rows is None, "heads": rows})
    for threshold in [0.9, 0.95, 0.8]:
        spec = f"xattention:tau={threshold}"
        with torch.no_grad():
            rows = xattention_blocks(xattn, q32, k32, 128, 8, threshold)
        cases.append({"spec": spec, "dense": False, "heads": rows})

    minference = load_minference(args.minference)
    # s >= 100: with fewer slashes than the 100 forced offsets, torch.topk picks among equal
    # (infinite) scores in an order of its own.
    for vertical, slash in [(1000, 6096), (100, 200), (30, 100), (300, 150)]:
        with torch.no_grad():
            rows = vertical_slash_keys(minference, q32, k32, args.layer, vertical, slash)
        cases.append({"spec": f"vertical-slash:v={vertical},s={slash}", "block": 64, "keys": rows})
    for top_k in [100, 8, 3]:
        with torch.no_grad():
            rows = block_sparse_blocks(args.minference, q32, k32, top_k)
        cases.append({"spec": f"block-sparse:topk={top_k}", "block": 64, "dense": False, "heads": rows})

    out = {
        "format": "longsparse-official-selections",
        "version": 1,
        "source": {
            "model": manifest.get("model_name"),
            "text": manifest.get("source"),
            "layer": args.layer,
            "query_heads": heads,
            "kv_head": sorted(kv)[0],
            "tokens": int(q.shape[1]),
        },
        "official": {
            "flexprefill": {"repository": "github.com/bytedance/FlexPrefill",
                            "commit": git_commit(args.flexprefill),
                            "function": "flex_prefill/ops/flex_prefill_attention.py:get_active_blocks"},
            "xattention": {"repository": "github.com/mit-han-lab/x-attention",
                           "commit": git_commit(args.xattention),
                           "function": "xattn/src/Xattention.py:xattn_estimate (use_triton=False, select_mode=inverse)"},
            "minference": {"repository": "github.com/microsoft/MInference",
                           "commit": git_commit(args.minference),
                           "function": "minference/modules/minference_forward.py:minference_prefill_kernel "
                                       "(vertical_and_slash_kernel), csrc/vertical_slash_index.cu "
                                       "(convert_vertical_slash_indexes_kernel: its key ranges computed on the CPU by this script), "
                                       "minference/ops/block_sparse_flash_attention.py:block_sparse_attention"},
            "torch": torch.__version__,
        },
        "block": 128,
        "cases": cases,
    }
    with open(f"{args.out}/selections.json", "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
