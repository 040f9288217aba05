"""Methods and plans from Python against the CLI on the same captured layer."""

import json

import numpy as np
import pytest

import longsparse
from conftest import load_layer, needs_model

CSR = ("range_offsets", "ranges", "column_offsets", "columns")
SCALARS = ("heads", "row_heads", "n_q", "n_k", "block_q", "block_k")


def prefill_specs():
    return [m["name"] for m in longsparse.methods("prefill")]


def test_registry_lists_methods_with_parameters():
    methods = longsparse.methods()
    names = {(m["phase"], m["name"]) for m in methods}
    assert ("prefill", "flexprefill") in names and ("decode", "quest") in names
    flex = next(m for m in methods if m["name"] == "flexprefill")
    gamma = next(p for p in flex["params"] if p["name"] == "gamma")
    assert gamma["kind"] == "float" and float(gamma["default"]) > 0 and flex["paper"]
    assert all(m["phase"] == "decode" for m in longsparse.methods("decode"))


def test_method_spec_is_canonical_and_errors_are_clear():
    m = longsparse.Method("flexprefill:gamma=0.94")
    assert m.name == "flexprefill" and m.spec.startswith("flexprefill:") and "gamma=0.94" in m.spec
    with pytest.raises(ValueError, match="unknown|known"):
        longsparse.Method("no-such-method")
    with pytest.raises(ValueError, match="gamma"):
        longsparse.Method("flexprefill:gamma=7")
    with pytest.raises(ValueError, match="decode selector"):
        longsparse.Method("quest")
    with pytest.raises(longsparse.Error):
        longsparse.Method("flexprefill:bogus=1")


@needs_model
@pytest.mark.parametrize("layer", [2, 15])
def test_every_method_plans_as_the_cli_does(capture_dir, run_cli, tmp_path, layer):
    directory = capture_dir / f"layer{layer}"
    manifest = json.loads((directory / "manifest.json").read_text())
    q, k, v = load_layer(directory)
    for name in prefill_specs():
        saved = tmp_path / f"{name}.npz"
        r = run_cli("bench", "attention", "--qkv", directory, "--plan", name, "--repeat", 1, "--threads", 1,
                    "--json", "--save-plan", saved)
        cli_plan = longsparse.Plan.load(saved)
        plan = longsparse.Method(name).plan(q, k, v, layer=layer, window=manifest["window"],
                                            scale=manifest["softmax_scale"])
        ours, theirs = plan.to_csr(), cli_plan.to_csr()
        for key in SCALARS:
            assert ours[key] == theirs[key], (name, key)
        for key in CSR:
            np.testing.assert_array_equal(ours[key], theirs[key], err_msg=f"{name} {key}")
        assert plan.density == pytest.approx(cli_plan.density, abs=1e-12)
        assert cli_plan.spec == plan.spec and cli_plan.layer == layer
        if r.stdout:
            assert json.loads(r.stdout.splitlines()[0])["density"] == pytest.approx(plan.density, abs=1e-12)


@needs_model
def test_recall_matches_the_cli_check(capture_dir, run_cli):
    directory = capture_dir / "layer15"
    q, k, v = load_layer(directory)
    spec = "vertical-slash:v=64,s=128"
    r = run_cli("bench", "attention", "--qkv", directory, "--plan", spec, "--check", "--repeat", 1, "--json")
    plan = longsparse.Method(spec).plan(q, k, v, layer=15)
    quality = plan.quality(q, k, v)
    assert 0 < plan.recall(q, k) < 1
    assert plan.recall(q, k) == pytest.approx(quality["recall"], abs=1e-12)
    if r.stdout:
        row = json.loads(r.stdout.splitlines()[0])
        assert quality["recall"] == pytest.approx(row["recall"], abs=1e-9)
        assert quality["rel_err"] == pytest.approx(row["rel_err"], rel=1e-3)


def random_qkv(heads=4, kv_heads=2, n=300, dim=64, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((heads, n, dim), dtype=np.float32),
            rng.standard_normal((kv_heads, n, dim), dtype=np.float32),
            rng.standard_normal((kv_heads, n, dim), dtype=np.float32))


def test_npz_round_trip_and_format(tmp_path):
    q, k, v = random_qkv()
    plan = longsparse.Method("streaming:sink=64,window=128").plan(q, k, v, layer=3)
    path = tmp_path / "plan.npz"
    plan.save(str(path))
    z = np.load(path)
    assert str(z["format"]) == "longsparse-plan" and int(z["version"]) == 1
    assert float(z["density"]) == pytest.approx(plan.density) and str(z["spec"]) == plan.spec
    back = longsparse.Plan.load(path)
    for key in CSR:
        np.testing.assert_array_equal(back.to_csr()[key], plan.to_csr()[key])
    assert back.layer == 3 and back.spec == plan.spec
    np.testing.assert_array_equal(longsparse.attention(q, k, v, plan=back), longsparse.attention(q, k, v, plan=plan))
    (tmp_path / "other.npz").write_bytes(b"not a zip")
    with pytest.raises(Exception):
        longsparse.Plan.load(tmp_path / "other.npz")
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    with pytest.raises(longsparse.Error, match="not a longsparse plan"):
        longsparse.Plan.load(tmp_path / "foreign.npz")


def test_mask_rows_agree_with_the_plan_and_causality():
    q, k, v = random_qkv(n=260)
    plan = longsparse.Method("streaming:sink=64,window=128").plan(q, k, v)
    rows = [0, 100, 259]
    mask = plan.to_mask(1, rows)
    assert mask.shape == (3, 260) and mask.dtype == bool
    assert mask[0, 0] and not mask[0, 1:].any()  # the first query sees only itself
    assert not mask[1, 101:].any() and mask[1, :64].all()  # causal; the sink is kept
    assert mask[2, 259] and mask[2, :64].all() and not mask[2, 64:128].all()
    with pytest.raises(ValueError, match="row 260"):
        plan.to_mask(0, [260])
    with pytest.raises(ValueError, match="head"):
        plan.to_mask(9, [0])


def test_a_users_own_csr_plan_runs_through_the_executor():
    q, k, v = random_qkv(heads=2, kv_heads=1, n=128)
    # One row per KV head and query block (block 64): block 0 sees key block 0; block 1 sees
    # key block 1 and the single column 5.
    plan = longsparse.Plan.from_csr(heads=2, row_heads=1, n_q=128, n_k=128, block_q=64, block_k=64,
                                    range_offsets=[0, 1, 2], ranges=[[0, 1], [1, 2]], column_offsets=[0, 0, 1],
                                    columns=[5])
    out = longsparse.attention(q, k, v, plan=plan)
    # Reference: query 100 attends to key 5 and keys 64..100.
    keys = [5, *range(64, 101)]
    s = k[0, keys] @ q[1, 100] / 8.0
    p = np.exp(s - s.max())
    np.testing.assert_allclose(out[1, 100], (p / p.sum()) @ v[0, keys], atol=2e-5)
    with pytest.raises(ValueError, match="diagonal|range|offset"):
        longsparse.Plan.from_csr(2, 1, 128, 128, 64, 64, [0, 1, 1], [[0, 1]], [0, 0, 0], [])
    with pytest.raises(ValueError):
        longsparse.Plan.from_csr(2, 1, 128, 128, 64, 64, [0, 1, 2], [[0, 1], [1, 2]], [0, 0, 1], [5.5])
    with pytest.raises(ValueError, match="the plan is for"):
        longsparse.attention(*(x[:, :64].copy() for x in (q, k, v)), plan=plan)
