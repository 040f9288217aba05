"""The model from Python against the CLI: tokens, generated text, captured Q/K/V, eval."""

import json

import numpy as np
import pytest

import longsparse
from conftest import TEXT, load_layer, needs_model

pytestmark = needs_model


def test_tokenize_round_trip_and_config(smollm2):
    ids = smollm2.tokenize("Hello, world! Ünïcödé")
    assert ids and all(isinstance(i, int) for i in ids)
    assert smollm2.detokenize(ids) == "Hello, world! Ünïcödé"
    assert smollm2.config["architecture"] == "llama" and smollm2.config["layers"] == 30
    assert len(smollm2.tokenize("hi", chat=True)) > len(smollm2.tokenize("hi"))


@pytest.mark.parametrize("prefill,decode", [("dense", "dense"), ("streaming:sink=64,window=256", "quest:budget=256")])
def test_generate_gives_the_cli_tokens(smollm2, run_cli, prefill, decode):
    prompt = TEXT[:1500] + "\nHow many steps did the keeper climb on day 3?"
    ours = smollm2.generate(prompt, max_tokens=12, prefill=prefill, decode=decode, chat=True)
    r = run_cli("run", "-m", "smollm2", "-p", prompt, "-n", 12, "--temp", 0, "--chat", "--json", "--prefill", prefill,
                "--decode", decode)
    assert ours["tokens"] and ours["prompt_tokens"] > 300
    if r.stdout:
        theirs = json.loads(r.stdout)
        assert ours["tokens"] == theirs["tokens"] and ours["text"] == theirs["text"]
        assert ours["prompt_tokens"] == theirs["prompt_tokens"]
        assert ours["ubatch"] == theirs["ubatch"]
    assert ours["ubatch"] == (512 if prefill == "dense" else 0)  # as run without -ub
    assert prefill.split(":")[0] in ours["prefill_method"] and ours["decode_method"].startswith(decode.split(":")[0])


def test_generate_errors(smollm2):
    with pytest.raises(ValueError, match="context"):
        smollm2.generate("x " * 9000, max_tokens=1)
    with pytest.raises(ValueError, match="known|unknown"):
        smollm2.generate("hi", max_tokens=1, prefill="nope")
    with pytest.raises(ValueError, match="temperature"):
        smollm2.generate("hi", max_tokens=1, temperature=-1)
    with pytest.raises(ValueError, match="cache"):
        smollm2.generate("hi", max_tokens=1, cache_type_k="q4_9")
    with pytest.raises(ValueError, match="ubatch"):
        smollm2.generate("hi", max_tokens=1, ubatch=-1)


def test_capture_equals_the_cli_capture(smollm2, capture_dir):
    layers = smollm2.capture(TEXT, [15, 2])
    assert sorted(layers) == [2, 15]
    for layer in (2, 15):
        q, k, v = load_layer(capture_dir / f"layer{layer}")
        got = layers[layer]
        assert got["q"].shape == q.shape == (9, got["tokens"], 64) and got["k"].shape == k.shape == (3, got["tokens"], 64)
        np.testing.assert_allclose(got["q"], q, atol=1e-5)
        np.testing.assert_allclose(got["k"], k, atol=1e-5)
        np.testing.assert_allclose(got["v"], v, atol=1e-5)
    with pytest.raises(ValueError, match="layer 30"):
        smollm2.capture("hi", [30])


def test_eval_and_report_run_the_cli_code(tmp_path):
    tasks = longsparse.eval.gen("passkey", 600, samples=2, model="smollm2", seed=4)
    assert len(tasks) == 2 and all(t["task"] == "passkey" and t["input"] and t["answers"] for t in tasks)
    out = tmp_path / "results.jsonl"
    rows = longsparse.eval.run(tasks, "smollm2", out=str(out), prefill="dense")
    assert len(rows) == 2 and all("score" in r for r in rows)
    assert longsparse.eval.run(tasks, "smollm2", out=str(out), prefill="dense") == []  # already there: skipped
    report = longsparse.report(str(out), tmp_path / "report")
    assert "passkey" in open(report).read()
