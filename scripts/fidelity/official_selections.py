#!/usr/bin/env python3
"""Runs the official selection code of sparse prefill methods on captured Q/K and writes the
index sets they select, as fixtures for tests/methods/official_fixture_test.cc.

The official repositories are not part of longsparse: pass their checkouts with --flexprefill,
--xattention and --minference (docs/fidelity.md names the commits). Their GPU-only pieces are
replaced by CPU equivalents defined here (FlexPrefill's Triton mean pool over blocks of K; the
`.to("cuda")` moves of xattn_estimate become no-ops; what MInference's CUDA index conversion
computes is done by official_vertical_slash_keys; the attention kernels are never run); the
selection logic itself is imported and run unchanged. The static methods (StreamingLLM's
StartRecentKVCache, MInference's A-shape / tri-shape kernels, LM-Infinite's
Lambda_Attention_Matrix) and AnchorAttention's three Triton steps are handled the same way
(static_* and anchor_* below): their Python runs unchanged, each Triton kernel is replaced by a
CPU function that evaluates what that kernel computes from the same arguments.

Usage:
  official_selections.py --capture DIR --layer 15 --heads 0,1 [--tokens N] --out tests/data/official/NAME \
      --flexprefill PATH --xattention PATH --minference PATH \
      [--streaming-llm PATH --lm-infinite PATH --anchor PATH]
writes NAME/q.npy and NAME/k.npy (float16: the query heads given and their KV head) and
NAME/selections.json (per method spec and head: the key blocks of every query block).
Without --capture, the inputs are the fixture's own q.npy/k.npy in --out: the cases of the
methods whose checkouts are given are (re)computed, every other case and entry is kept as is.
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


# ---------------------------------------------------------------------------------------------
# Static methods: per-token masks, labelled by the branch of the official code that keeps the
# key ("global": the sinks / global branch, "local": the window / local branch, "dense": the
# tri-shape's dense last queries). Each branch keeps one contiguous range [a, b) of keys per
# query (asserted); a case stores, per branch, that range for every query ([0, 0]: none).


def mask_to_ranges(mask):
    """mask [n][n] bool (query, key) -> per query the [a, b) its keys form (asserted contiguous)."""
    out = []
    for row in mask:
        keys = np.flatnonzero(row)
        if len(keys) == 0:
            out.append([0, 0])
            continue
        assert keys[-1] - keys[0] + 1 == len(keys), "a branch keeps a contiguous range of keys"
        out.append([int(keys[0]), int(keys[-1]) + 1])
    return out


def static_case(spec, branches, n, official):
    masks = {name: np.zeros((n, n), dtype=bool) for name in ("global", "local", "dense")}
    for name, mask in branches.items():
        masks[name] |= mask
    both = masks["global"].astype(int) + masks["local"].astype(int) + masks["dense"].astype(int)
    assert both.max() <= 1, "a key is kept by two branches"
    assert not np.triu(both, 1).any(), "the official masks are causal"
    return {"spec": spec, "block": 64, "official": official,
            "tokens": {name: mask_to_ranges(mask) for name, mask in masks.items() if mask.any()}}


def static_streaming_llm(root, n, start_size, recent_size):
    """StreamingLLM as its streaming evaluation runs it (examples/eval_long_ppl.py): one token
    at a time, the KV cache trimmed by StartRecentKVCache after every step. The keys in the
    cache are tagged with their positions; query p attends to the cache plus its own key."""
    sys.path.insert(0, root)
    from streaming_llm.kv_cache import StartRecentKVCache
    cache = StartRecentKVCache(start_size=start_size, recent_size=recent_size)
    mask = np.zeros((n, n), dtype=bool)
    past = None
    for p in range(n):
        own = torch.full((1, 1, 1, 1), float(p))
        k = own if past is None else torch.cat([past[0][0], own], dim=2)  # the model's concat
        keys = k.reshape(-1).long().numpy()
        mask[p, keys] = True
        past = cache([[k, k.clone()]])
    g = np.zeros_like(mask)
    g[:, :start_size] = mask[:, :start_size]
    return {"global": g, "local": mask & ~g}


def load_streaming_kernel(root):
    """MInference's minference/ops/streaming_kernel.py with its two Triton kernels replaced:
    `_forward` (the attention of one stage) by a CPU function that records the stage's mask as
    `_attn_fwd_inner` evaluates it (dist = i - j + sliding_window_offset; a window stage keeps
    0 <= dist < size, a complement stage dist >= size; keys past NKV_CTX are masked). The tile
    bounds lo/hi of a window stage never cut a key that mask keeps, so every key is tested."""
    from unittest import mock
    triton = mock.MagicMock(name="triton")
    triton.jit = lambda f=None, **kw: f if f is not None else (lambda g: g)
    triton.autotune = lambda *a, **kw: (lambda f: f)
    triton.heuristics = lambda *a, **kw: (lambda f: f)
    sys.modules["triton"] = triton
    sys.modules["triton.language"] = triton.language
    spec = importlib.util.spec_from_file_location("minference_streaming_kernel",
                                                  f"{root}/minference/ops/streaming_kernel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.recorded = []

    def forward(q, k, v, sm_scale, o=None, m=None, l=None, end=False, sliding_window=None, init=False,
                complement_sliding_window=False):
        n_q, n_k = q.shape[2], k.shape[2]
        i = np.arange(n_q)[:, None]
        j = np.arange(n_k)[None, :]
        if sliding_window is None:
            keep = np.ones((n_q, n_k), dtype=bool)
        else:
            offset, size = sliding_window
            dist = i - j + offset
            keep = dist >= size if complement_sliding_window else (dist >= 0) & (dist < size)
        module.recorded.append(("init" if complement_sliding_window else "window", keep))
        if end:
            o = o[:, :, :n_q, :].contiguous().to(q.dtype)
        return o, m, l

    module._forward = forward
    return module


def static_minference(module, q, k, n_init, n_local, tri, n_last=100):
    """a_shape_kernel / tri_shape_kernel of streaming_kernel.py on the fixture (one head: the
    masks do not depend on the head). tri_shape_kernel's dense rows are read from the scores it
    hands to softmax (finite = kept)."""
    n, dim = q.shape[1], q.shape[2]
    qt = torch.from_numpy(q[:1]).reshape(1, 1, n, dim)
    kt = torch.from_numpy(k[:1]).reshape(1, 1, n, dim)
    config = {"attn_forward_config": {"n_init": n_init, "n_local": n_local, "n_last": n_last}}
    module.recorded = []
    dense = np.zeros((n, n), dtype=bool)
    original_softmax, original_arange = torch.nn.functional.softmax, torch.arange

    def softmax(x, *args, **kwargs):
        rows = x.shape[-2]
        dense[n - rows:, :] = torch.isfinite(x[0, 0]).numpy()
        return original_softmax(x, *args, **kwargs)

    def arange(*args, **kwargs):
        if kwargs.get("device") == "cuda":
            kwargs["device"] = "cpu"
        return original_arange(*args, **kwargs)

    torch.nn.functional.softmax, torch.arange = softmax, arange
    try:
        if tri:
            module.tri_shape_kernel(qt, kt, kt, config)
        else:
            module.a_shape_kernel(qt, kt, kt, config)
    finally:
        torch.nn.functional.softmax, torch.arange = original_softmax, original_arange
    branches = {"global": np.zeros((n, n), dtype=bool), "local": np.zeros((n, n), dtype=bool), "dense": dense}
    for kind, keep in module.recorded:
        rows, cols = keep.shape  # the stages' queries are the first rows (tri-shape: q[:-n_last])
        branches["global" if kind == "init" else "local"][:rows, :cols] |= keep
    return branches


def static_lm_infinite(root, q, k, global_branch, local_branch):
    """LM-Infinite's Lambda_Attention_Matrix (models/lambda_attention.py) on the fixture's first
    head, run as it is. Which keys each query attends to, and through which branch, is read by
    replacing its scores with 1 where they are above min_value / 2 (kept) and 0 elsewhere and
    multiplying by an identity `value` (its own matmul, per branch): entry (p, j) then counts
    how often key j enters query p's output."""
    spec = importlib.util.spec_from_file_location("lm_infinite_lambda_attention", f"{root}/models/lambda_attention.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    n, dim = q.shape[1], q.shape[2]
    qt = torch.from_numpy(q[:1]).double().reshape(1, 1, n, dim)
    kt = torch.from_numpy(k[:1]).double().reshape(1, 1, n, dim)
    eye = torch.eye(n, dtype=torch.float64).reshape(1, 1, n, n)
    out = {}
    for name in ("global", "local"):
        m = module.lambda_matmul(kt, kt, qt, qt, local_branch, global_branch)
        kept = (m.attn > m.min_value / 2).double()
        if m.mode == "long_seq":  # [stationary (global branch) | rotated pairs of blocks (local)]
            if name == "global":
                kept[..., global_branch:] = 0
            else:
                kept[..., :global_branch] = 0
        else:  # short_seq: one causal matrix (the global columns replaced where they are kept)
            assert m.mode == "short_seq"
            if name == "global":
                kept[...] = 0
        m.attn = kept
        counts = m.matmul(eye)[0, 0].numpy()
        assert counts.max() <= 1.0
        out[name] = counts > 0.5
    return out


# ---------------------------------------------------------------------------------------------
# AnchorAttention: anchor_attn_v4.anchor_attn (what modules/llama/anchor_attention.py calls) run
# as it is; its three Triton kernels are replaced by CPU functions taking the same arguments.


def load_anchor(root):
    from unittest import mock
    triton = mock.MagicMock(name="triton")
    triton.jit = lambda f=None, **kw: f if f is not None else (lambda g: g)
    triton.cdiv = lambda a, b: (a + b - 1) // b
    sys.modules["triton"] = triton
    sys.modules["triton.language"] = triton.language
    sys.modules.setdefault("my_utils", types.SimpleNamespace(Logger=mock.MagicMock(name="Logger")))
    flash = types.ModuleType("transformers.modeling_flash_attention_utils")
    flash._flash_attention_forward = None  # imported by anchor_step_1_2_v2, not called
    sys.modules.setdefault("transformers.modeling_flash_attention_utils", flash)
    for name, path in [("anchor_attn", "anchor_attn"), ("anchor_attn.src", "anchor_attn/src"),
                       ("anchor_attn.src.ops", "anchor_attn/src/ops")]:
        package = types.ModuleType(name)
        package.__path__ = [f"{root}/{path}"]
        sys.modules[name] = package
    v4 = importlib.import_module("anchor_attn.src.ops.anchor_attn_v4")
    step12 = importlib.import_module("anchor_attn.src.ops.anchor_step_1_2_v2")
    mask = importlib.import_module("anchor_attn.src.ops.get_mask_test")
    state = {}

    class Launch:
        def __init__(self, fn):
            self.fn = fn

        def __getitem__(self, grid):
            return lambda *args, **kwargs: self.fn(grid, *args, **kwargs)

    def step1(grid, Q, K, V, L_buffer, M_buffer, Acc_buffer, *args, **kw):
        # get_mask_fused_anchor_triton: per tile of BLOCK_SZ_M queries, the running max of
        # q*sm_scale*log2(e) . k over the initial keys [0, init_offset) and then the local loop
        # j in [max(local_offset, init_offset), (group + 1) * block * step), whose key pointer
        # starts at local_offset (as the kernel's make_block_ptr); causal by j. The max is M.
        init_cnt, local_cnt, sm_scale, step = args[20:24]
        B, H, N, D = args[24:28]
        bs, bm, bn = kw["BLOCK_SZ"], kw["BLOCK_SZ_M"], kw["BLOCK_SZ_N"]
        G = bs * step
        region = torch.zeros(B, H, N, N, dtype=torch.bool)
        for start_m in range(grid[0]):
            g = (start_m * bm) // G
            init_offset = min(init_cnt * G, (start_m + 1) * bm)
            local_offset = max((g - local_cnt + 1) * G, 0)
            rows = torch.arange(start_m * bm, (start_m + 1) * bm)
            q = Q[:, :, rows].float() * sm_scale * 1.44269504
            m = torch.full((B, H, bm), -float("inf"))
            loads = [(j, j) for j in range(0, init_offset, bn)]
            loads += [(j, local_offset + t * bn) for t, j in
                      enumerate(range(max(local_offset, init_offset), (g + 1) * G, bn))]
            for j, ptr in loads:
                k = K[:, :, ptr:ptr + bn].float()
                qk = q @ k.transpose(-1, -2)
                causal = (torch.arange(bn)[None, :] + j) <= rows[:, None]
                qk = qk + torch.where(causal, 0.0, -1e6)
                m = torch.maximum(m, qk.max(-1).values)
                region[:, :, rows, ptr:ptr + bn] |= causal
            M_buffer[:, :, rows] = m
        state["region"] = region

    def step2(grid, Q, K, anchors, true_coords, true_counts, diff, *args, **kw):
        # get_q_mask_triton: per group of step blocks, the blocks' mean query and mean anchor;
        # key blocks i in [BLOCK_SZ, group * BLOCK_SZ * step - BLOCK_SZ): a key is a stripe when
        # (mean_q . k * qk_scale * log2(e) + diff >= mean anchor) for any block of the group.
        B, H, N, D = args[20:24]
        bs, step, qk_scale = kw["BLOCK_SZ"], kw["step"], kw["qk_scale"]
        for start_m in range(grid[0]):
            rows = slice(start_m * bs * step, (start_m + 1) * bs * step)
            q = Q[:, :, rows].float().reshape(B, H, step, bs, D).sum(3) / bs
            a = anchors[:, :, rows].float().reshape(B, H, step, bs, 1).sum(3) / bs
            scale = qk_scale * 1.44269504
            for b in range(B):
                for h in range(H):
                    count = 0
                    for i in range(bs, start_m * bs * step - bs, bs):
                        qk = (q[b, h] @ K[b, h, i:i + bs].float().T) * scale  # [step, bs]
                        valid = ((qk + diff) >= a[b, h]).any(0)
                        keys = torch.arange(i, i + bs)[valid]
                        true_coords[b, h, start_m, count:count + len(keys)] = keys.int()
                        count += len(keys)
                    true_counts[b, h, start_m, 0] = count

    def step3(grid, Q, K, V, sm_scale, true_coords, true_counts, *args, **kw):
        # _triton_stripe_sparse_attn_fwd_kernel_step3 continues each query's step-1 state over
        # true_coords[group, :true_counts[group]] (group = query // STEP): those are its stripes.
        state["coords"], state["counts"] = true_coords.clone(), true_counts.clone()
        state["STEP"] = kw["STEP"]

    step12.get_mask_fused_anchor_triton = Launch(step1)
    mask.get_q_mask_triton = Launch(step2)
    v4._triton_stripe_sparse_attn_fwd_kernel_step3 = Launch(step3)
    return v4, state


def anchor_keys(module, q, k, block, step, theta):
    """modules/llama/anchor_attention.py: the last n % (block * step) queries run dense (flash
    attention, causal), the others through anchor_attn(block_size=block, step, difference=theta).
    Per head, per query block of `block`: the keys its queries attend to (step 1's region plus
    step 3's stripes, up to the block's last query), as ranges; and how many (query, key) pairs
    step 3 adds a second time (a stripe inside step 1's region)."""
    v4, state = module
    heads, n, dim = q.shape
    group = heads // k.shape[0]
    G = block * step
    whole = n - n % G  # (the integration slices [:-pad], empty when pad == 0: we use n then)
    rows_out, twice = [], 0
    for h in range(heads):
        kept = np.tril(np.ones((n, n), dtype=bool))  # dense rows, replaced below for [0, whole)
        if whole:
            qt = torch.from_numpy(q[h, :whole]).reshape(1, 1, whole, dim)
            kt = torch.from_numpy(k[h // group, :whole]).reshape(1, 1, whole, dim)
            v4.anchor_attn(qt, kt, kt, block_size=block, step=step, difference=theta,
                           return_computational_ratio=False)
            region = state["region"][0, 0].numpy()
            stripes = np.zeros((whole, whole), dtype=bool)
            coords, counts = state["coords"][0, 0], state["counts"][0, 0]
            for g in range(whole // state["STEP"]):
                keys = coords[g, :counts[g, 0]].long().numpy()
                stripes[g * G:(g + 1) * G, keys] = True
            twice += int((region & stripes).sum())
            kept[:whole, :] = False
            kept[:whole, :whole] = region | stripes
        head_rows = []
        for start in range(0, n, block):
            last = min(start + block, n) - 1
            keys = np.flatnonzero(kept[start:last + 1].any(0)[:last + 1])
            runs, begin = [], None
            for a, b in zip(keys, list(keys[1:]) + [None]):
                begin = a if begin is None else begin
                if b is None or b != a + 1:
                    runs.append([int(begin), int(a) + 1])
                    begin = None
            head_rows.append({"ranges": runs, "columns": []})
        rows_out.append(head_rows)
    return rows_out, twice


def set_case(cases, case):
    for i, c in enumerate(cases):
        if c["spec"] == case["spec"]:
            cases[i] = case
            return
    cases.append(case)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capture", help="a capture directory; without it, the inputs are --out's q.npy/k.npy")
    ap.add_argument("--layer", type=int)
    ap.add_argument("--heads", help="query heads of one KV head, e.g. 0,1")
    ap.add_argument("--tokens", type=int, default=0, help="keep the first N tokens (a capture's prefix is the capture of the prefix)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--flexprefill")
    ap.add_argument("--xattention")
    ap.add_argument("--minference")
    ap.add_argument("--minference-streaming", help="a MInference checkout, for its A-shape / tri-shape only")
    ap.add_argument("--streaming-llm")
    ap.add_argument("--lm-infinite")
    ap.add_argument("--anchor")
    args = ap.parse_args()

    import os
    if args.capture:
        assert all([args.flexprefill, args.xattention, args.minference, args.minference_streaming,
                    args.streaming_llm, args.lm_infinite, args.anchor]), "a new fixture needs every method"
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
        os.makedirs(args.out, exist_ok=True)
        np.save(f"{args.out}/q.npy", q)
        np.save(f"{args.out}/k.npy", k)
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
            "official": {"torch": torch.__version__},
            "block": 128,
            "cases": [],
        }
    else:
        q, k = np.load(f"{args.out}/q.npy"), np.load(f"{args.out}/k.npy")
        out = json.load(open(f"{args.out}/selections.json"))
        if args.layer is None:
            args.layer = out["source"]["layer"]
    q32, k32 = q.astype(np.float32), k.astype(np.float32)
    n = q.shape[1]
    official, cases = out["official"], out["cases"]

    if args.flexprefill:
        flex = load_flexprefill(args.flexprefill)
        for gamma, tau, min_budget in [(0.9, 0.1, 512), (0.95, 0.1, 1024), (0.9, 0.0, 128), (0.8, 1.0, 128)]:
            spec = f"flexprefill:gamma={gamma},tau={tau},min_budget={min_budget}"
            with torch.no_grad():
                rows = flexprefill_blocks(flex, q32, k32, 128, gamma, tau, min_budget, 0)
            set_case(cases, {"spec": spec, "dense": rows is None, "heads": rows})
        official["flexprefill"] = {"repository": "github.com/bytedance/FlexPrefill",
                                   "commit": git_commit(args.flexprefill),
                                   "function": "flex_prefill/ops/flex_prefill_attention.py:get_active_blocks"}
    if args.xattention:
        xattn = load_xattention(args.xattention)
        for threshold in [0.9, 0.95, 0.8]:
            with torch.no_grad():
                rows = xattention_blocks(xattn, q32, k32, 128, 8, threshold)
            set_case(cases, {"spec": f"xattention:tau={threshold}", "dense": False, "heads": rows})
        official["xattention"] = {"repository": "github.com/mit-han-lab/x-attention",
                                  "commit": git_commit(args.xattention),
                                  "function": "xattn/src/Xattention.py:xattn_estimate (use_triton=False, select_mode=inverse)"}
    if args.minference:
        minference = load_minference(args.minference)
        # s >= 100: with fewer slashes than the 100 forced offsets, torch.topk picks among equal
        # (infinite) scores in an order of its own.
        for vertical, slash in [(1000, 6096), (100, 200), (30, 100), (300, 150)]:
            with torch.no_grad():
                rows = vertical_slash_keys(minference, q32, k32, args.layer, vertical, slash)
            set_case(cases, {"spec": f"vertical-slash:v={vertical},s={slash}", "block": 64, "keys": rows})
        for top_k in [100, 8, 3]:
            with torch.no_grad():
                rows = block_sparse_blocks(args.minference, q32, k32, top_k)
            set_case(cases, {"spec": f"block-sparse:topk={top_k}", "block": 64, "dense": False, "heads": rows})
        official["minference"] = {"repository": "github.com/microsoft/MInference",
                                  "commit": git_commit(args.minference),
                                  "function": "minference/modules/minference_forward.py:minference_prefill_kernel "
                                              "(vertical_and_slash_kernel), csrc/vertical_slash_index.cu "
                                              "(convert_vertical_slash_indexes_kernel: its key ranges computed on the CPU by this script), "
                                              "minference/ops/block_sparse_flash_attention.py:block_sparse_attention"}
    if args.minference_streaming:
        # A-shape / tri-shape: streaming_kernel.py's a_shape_kernel and tri_shape_kernel.
        kernel = load_streaming_kernel(args.minference_streaming)
        for n_init, n_local, tri in [(100, 800, False), (128, 256, False), (100, 800, True), (64, 300, True)]:
            with torch.no_grad():
                branches = static_minference(kernel, q32, k32, n_init, n_local, tri)
            spec = f"streaming:sink={n_init},window={n_local}" + (",tri=true" if tri else "")
            set_case(cases, static_case(spec, branches, n, {
                "function": "minference/ops/streaming_kernel.py:" + ("tri_shape_kernel" if tri else "a_shape_kernel"),
                "n_init": n_init, "n_local": n_local, **({"n_last": 100} if tri else {})}))
        official["minference_streaming"] = {
            "repository": "github.com/microsoft/MInference", "commit": git_commit(args.minference_streaming),
            "function": "minference/ops/streaming_kernel.py:a_shape_kernel, tri_shape_kernel (the Triton "
                        "stages' masks, _attn_fwd_inner, evaluated on the CPU by this script)"}
    if args.streaming_llm:
        for start_size, recent_size, spec in [(4, 2000, "streaming"), (4, 512, "streaming:sink=4,window=512"),
                                              (4, 449, "streaming:sink=4,window=450")]:
            branches = static_streaming_llm(args.streaming_llm, n, start_size, recent_size)
            set_case(cases, static_case(spec, branches, n, {
                "function": "streaming_llm/kv_cache.py:StartRecentKVCache.__call__ (examples/eval_long_ppl.py)",
                "start_size": start_size, "recent_size": recent_size}))
        official["streaming_llm"] = {"repository": "github.com/mit-han-lab/streaming-llm",
                                     "commit": git_commit(args.streaming_llm),
                                     "function": "streaming_llm/kv_cache.py:StartRecentKVCache, one token per step "
                                                 "as examples/eval_long_ppl.py runs it"}
    if args.lm_infinite:
        for global_branch, local_branch in [(100, 4096), (100, 512), (10, 300), (64, 128)]:
            with torch.no_grad():
                branches = static_lm_infinite(args.lm_infinite, q32, k32, global_branch, local_branch)
            set_case(cases, static_case(f"lambda:global={global_branch},local={local_branch}", branches, n, {
                "function": "models/lambda_attention.py:Lambda_Attention_Matrix",
                "global_branch": global_branch, "local_branch": local_branch}))
        official["lm_infinite"] = {"repository": "github.com/Glaciohound/LM-Infinite",
                                   "commit": git_commit(args.lm_infinite),
                                   "function": "models/lambda_attention.py:Lambda_Attention_Matrix (the mask; "
                                               "limit_distance changes the scores, not the mask)"}
    if args.anchor:
        anchor = load_anchor(args.anchor)
        for block, step, theta, spec in [(32, 16, 12.0, "anchor"), (16, 16, 12.0, "anchor:block=16"),
                                         (16, 16, 4.0, "anchor:block=16,theta=4"),
                                         (16, 16, 0.0, "anchor:block=16,theta=0")]:
            with torch.no_grad():
                rows, twice = anchor_keys(anchor, q32, k32, block, step, theta)
            set_case(cases, {"spec": spec, "block": block, "keys": rows, "official": {
                "block_size": block, "step": step, "theta": theta, "pairs_counted_twice": twice}})
        official["anchor"] = {"repository": "github.com/yuzhouzhang9/Anchor-Attention",
                              "commit": git_commit(args.anchor),
                              "function": "anchor_attn/src/ops/anchor_attn_v4.py:anchor_attn (its Triton kernels "
                                          "anchor_step_1_2_v2.py:get_mask_fused_anchor_triton, get_mask_test.py:"
                                          "get_q_mask_triton, anchor_attn_v4.py:_triton_stripe_sparse_attn_fwd_kernel_step3 "
                                          "evaluated on the CPU by this script, in float32), called as "
                                          "modules/llama/anchor_attention.py does (the queries past the last whole "
                                          "group dense)"}
    official["torch"] = torch.__version__

    with open(f"{args.out}/selections.json", "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
