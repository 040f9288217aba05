"""Shared fixtures: the CLI to compare with, a small text, and one captured model layer."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import longsparse

ROOT = Path(__file__).resolve().parents[2]


def cli_binary():
    """The `longsparse` executable: $LONGSPARSE_CLI, else build/longsparse, else on PATH."""
    for candidate in (os.environ.get("LONGSPARSE_CLI"), ROOT / "build" / "longsparse", shutil.which("longsparse")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


@pytest.fixture(scope="session")
def run_cli():
    """Runs the executable (a separate process, as a user would) and returns CompletedProcess;
    without one, the in-process CLI (longsparse.cli) with its exit status only."""
    binary = cli_binary()

    def run(*args, check=True):
        args = [str(a) for a in args]
        if binary:
            r = subprocess.run([binary, *args], capture_output=True, text=True)
            if check and r.returncode != 0:
                raise AssertionError(f"longsparse {' '.join(args)} failed ({r.returncode}): {r.stderr}")
            return r
        status = longsparse.cli(*args)
        if check and status != 0:
            raise AssertionError(f"longsparse {' '.join(args)} failed ({status})")
        return subprocess.CompletedProcess(args, status, "", "")

    return run


def model_cached():
    """Whether SmolLM2 is in the model cache (scripts/fetch-model smollm2)."""
    path = Path(os.environ.get("LONGSPARSE_MODELS", Path.home() / ".cache/longsparse/models"))
    return any(path.glob("SmolLM2-135M-Instruct*.gguf"))


needs_model = pytest.mark.skipif(not model_cached(), reason="SmolLM2 not cached: run scripts/fetch-model smollm2")

TEXT = "".join(
    f"On day {i + 1} the keeper of the lighthouse counted {17 * i % 23 + 2} ships passing the northern rocks, "
    f"wrote the number in the log, and climbed the {i % 7 + 90} steps to trim the wick before the fog came in. "
    for i in range(48)
)


@pytest.fixture(scope="session")
def smollm2():
    return longsparse.Model("smollm2")


@pytest.fixture(scope="session")
def capture_dir(tmp_path_factory, run_cli):
    """The CLI's capture of layers 2 and 15 of SmolLM2 on TEXT."""
    d = tmp_path_factory.mktemp("capture")
    (d / "text.txt").write_text(TEXT)
    run_cli("capture", "-m", "smollm2", "-f", d / "text.txt", "--layers", "2,15", "--out", d / "cap")
    return d / "cap"


def load_layer(directory):
    return tuple(np.load(directory / f"{x}.npy") for x in "qkv")
