"""longsparse: long-context LLM inference with training-free sparse attention, from Python.

The C++ engine behind the `longsparse` CLI, with numpy-level access:

- ``attention(q, k, v, ...)``: the dense flash kernel or the plan executor;
- ``methods()``: the method registry; ``Method(spec).plan(q, k, v)`` builds a ``Plan``;
- ``Plan``: density, CSR arrays, sampled-row masks, recall; ``Plan.from_csr`` runs your own
  mask through the executor; ``Plan.save`` / ``Plan.load`` (.npz, docs/capture.md);
- ``Model("smollm2" | path)``: tokenize, generate with sparse prefill / decode, capture Q/K/V;
- ``eval.run(...)`` and ``report(...)``: the CLI's evaluation and report, in this process.

Arrays are float32, C-contiguous, CPU: ``q`` is [heads][n_q][dim], ``k`` and ``v``
[kv_heads][n_k][dim] (query head h reads KV head h // (heads // kv_heads); the n_q queries are
the last n_q of the n_k positions; attention is causal). numpy arrays, torch CPU tensors and
anything with the buffer protocol or DLPack are read in place; anything else is a ValueError.
"""

from . import _environment

_environment.prepare()  # before the C++ libraries (OpenBLAS, libgomp) load

import json as _json  # noqa: E402

import numpy as _np  # noqa: E402

from . import _core  # noqa: E402
from ._core import Error, Method, Model, Plan  # noqa: E402,F401

__version__ = "0.1.0"
__all__ = [
    "Error", "Method", "Model", "Plan", "attention", "methods", "kernels", "set_threads", "threads", "report",
    "cli", "eval",
]


def attention(q, k, v, causal=True, window=0, plan=None, scale=None, return_lse=False):
    """Causal attention of ``q`` over ``k``, ``v``; returns out [heads][n_q][dim].

    window: > 0 lets a query at position p see keys p-window+1 .. p only.
    plan: a ``Plan`` for these shapes: only the keys it selects are attended (always within
    causality and the window). None: the dense kernel.
    scale: the softmax scale (None: 1/sqrt(dim)).
    return_lse: also return each row's log-sum-exp of its scaled scores, [heads][n_q]
    (natural log), so that partial attentions can be merged.
    ``causal=False`` raises ValueError: the kernels are causal.
    """
    return _core.attention(q, k, v, causal=causal, window=window, scale=scale or 0.0, plan=plan,
                           return_lse=return_lse)


def methods(phase=None):
    """The registered methods as dicts: name, phase ("prefill" | "decode"), paper, summary and
    params (name, default, meaning, kind, min/max or choices). ``phase`` filters."""
    return [m for m in _core.methods() if phase is None or m["phase"] == phase]


def kernels():
    """The CPU and the kernels that run on it (matmul, attention, estimate, BLAS core, OpenMP wait)."""
    return _json.loads(_core.kernels_json())


def set_threads(threads=0):
    """Threads the kernels use (0: every core this process may run on). Returns the count in use."""
    return _core.set_threads(threads)


def threads():
    """Threads the kernels use."""
    return _core.threads()


def cli(*args):
    """Runs one `longsparse` command in this process, e.g. ``cli("methods")``; returns its exit
    status. Errors raise ``longsparse.Error``."""
    return _core.cli([str(a) for a in args])


def report(results, out_dir=None, baseline=None):
    """``longsparse report``: the tables and SVG plots of eval / sweep results (JSONL paths, one
    or a list) in ``out_dir`` (report.md); returns the path of report.md, or None without out_dir."""
    import os

    paths = [results] if isinstance(results, (str, os.PathLike)) else list(results)
    args = ["report", *map(str, paths)]
    if out_dir is not None:
        args += ["--out", str(out_dir)]
    if baseline is not None:
        args += ["--baseline", baseline]
    status = cli(*args)
    if status != 0:
        raise Error(f"longsparse report exited with status {status}")
    return os.path.join(str(out_dir), "report.md") if out_dir is not None else None


def _plan_load(path):
    """Reads a plan written by ``Plan.save`` or ``longsparse bench attention --save-plan``."""
    with _np.load(path, allow_pickle=False) as z:
        fmt = str(z["format"]) if "format" in z.files else ""
        if fmt != "longsparse-plan":
            raise Error(f"{path}: not a longsparse plan file (format {fmt!r})")
        if int(z["version"]) != 1:
            raise Error(f"{path}: plan file version {int(z['version'])} is not supported (1)")
        return Plan.from_csr(
            int(z["heads"]), int(z["row_heads"]), int(z["n_q"]), int(z["n_k"]), int(z["block_q"]),
            int(z["block_k"]), z["range_offsets"], z["ranges"], z["column_offsets"], z["columns"],
            window=int(z["window"]), spec=str(z["spec"]), layer=int(z["layer"]))


def _plan_recall(self, q, k, rows=64, seed=1):
    """Mean attention mass the plan keeps over ``rows`` sampled query rows per head (the CLI's
    ``--check`` recall with the same rows and seed)."""
    return self.quality(q, k, rows=rows, seed=seed)["recall"]


def _detokenize(self, ids, special=False):
    """Ids → text (invalid UTF-8 replaced); control tokens only with ``special``."""
    return self.detokenize_bytes(list(ids), special).decode("utf-8", errors="replace")


Plan.load = staticmethod(_plan_load)
Plan.recall = _plan_recall
Model.detokenize = _detokenize

from . import eval  # noqa: E402,F401
