"""The evaluation harness from Python: the CLI's `gen` and `eval` commands run in this process
(the same C++ code), their JSONL read back as dicts. docs/eval.md describes tasks and fields."""

import json
import os
import sys
import tempfile

from . import _core

__all__ = ["gen", "run", "read_results"]


def _cli(args):
    status = _core.cli([str(a) for a in args])
    if status != 0:
        raise _core.Error(f"longsparse {args[0]} exited with status {status}")


def read_results(path):
    """The rows of a JSONL file (tasks or results) as a list of dicts."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def gen(task, length, samples=20, model="smollm2", seed=None, depth=None, gen_tokens=None, out=None):
    """``longsparse gen``: ``samples`` prompts of task ``task`` (``longsparse gen --list``) that fit
    ``length`` tokens of ``model``'s tokenizer. Writes them to ``out`` (JSONL) when given and
    returns them as dicts."""
    args = ["gen", "-m", model, "--task", task, "--len", length, "--samples", samples]
    if seed is not None:
        args += ["--seed", seed]
    if depth is not None:
        args += ["--depth", depth]
    if gen_tokens is not None:
        args += ["--gen-tokens", gen_tokens]
    # gen writes to the process's stdout (file descriptor 1): point it at a file meanwhile.
    with tempfile.NamedTemporaryFile("w+b", suffix=".jsonl", delete=False) as tmp:
        path = tmp.name
    try:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(path, "wb") as f:
                os.dup2(f.fileno(), 1)
                try:
                    _cli(args)
                finally:
                    os.dup2(saved, 1)
        finally:
            os.close(saved)
        if out is not None:
            with open(path, "rb") as src, open(out, "wb") as dst:
                dst.write(src.read())
        return read_results(path)
    finally:
        os.unlink(path)


def run(tasks, model, out, prefill="dense", decode="dense", policy=None, dense_layers=None, threads=0,
        cache_type_k=None, cache_type_v=None, progress=False):
    """``longsparse eval``: runs every sample of ``tasks`` (a JSONL path, or a list of task dicts
    as ``gen`` returns) through ``model`` (a cached name, a GGUF path or a ``Model``'s path) with
    the given prefill method (and decode selector(s), ';'-separated), appending to ``out``
    (samples already there for this method are skipped, as in the CLI). Returns the rows this
    call appended, as dicts."""
    if isinstance(model, _core.Model):
        model = model.path
    tmp = None
    if not isinstance(tasks, (str, os.PathLike)):
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            for t in tasks:
                f.write(json.dumps(t) + "\n")
            tmp = tasks = f.name
    before = len(read_results(out)) if os.path.exists(out) else 0
    try:
        args = ["eval", "-m", model, "--tasks", tasks, "--out", out, "--prefill", prefill, "--decode", decode]
        if policy:
            args += ["--policy", policy]
        if dense_layers:
            args += ["--dense-layers", dense_layers]
        if threads:
            args += ["-t", threads]
        if cache_type_k:
            args += ["--cache-type-k", cache_type_k]
        if cache_type_v:
            args += ["--cache-type-v", cache_type_v]
        if not progress:
            args.append("--no-progress")
        _cli(args)
    finally:
        if tmp:
            os.unlink(tmp)
    return read_results(out)[before:]
