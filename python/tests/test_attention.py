"""attention() against a numpy reference; bad inputs raise ValueError."""

import numpy as np
import pytest

import longsparse


def reference(q, k, v, window=0, scale=None):
    """Causal attention row by row in float64 (never the n×n matrix at once)."""
    heads, n_q, dim = q.shape
    kv_heads, n_k, _ = k.shape
    group = heads // kv_heads
    scale = scale or 1.0 / np.sqrt(dim)
    out = np.zeros((heads, n_q, dim))
    lse = np.zeros((heads, n_q))
    for h in range(heads):
        kk, vv = k[h // group].astype(np.float64), v[h // group].astype(np.float64)
        for i in range(n_q):
            p = n_k - n_q + i
            first = p - window + 1 if window and p >= window else 0
            s = kk[first : p + 1] @ q[h, i].astype(np.float64) * scale
            m = s.max()
            e = np.exp(s - m)
            out[h, i] = e @ vv[first : p + 1] / e.sum()
            lse[h, i] = m + np.log(e.sum())
    return out, lse


def random_qkv(heads, kv_heads, n_q, n_k, dim, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((heads, n_q, dim), dtype=np.float32)
    k = rng.standard_normal((kv_heads, n_k, dim), dtype=np.float32)
    v = rng.standard_normal((kv_heads, n_k, dim), dtype=np.float32)
    return q, k, v


@pytest.mark.parametrize(
    "heads,kv_heads,n_q,n_k,dim,window",
    [(1, 1, 1, 1, 64, 0), (3, 1, 77, 77, 64, 0), (4, 2, 33, 190, 32, 0), (6, 3, 129, 129, 80, 0),
     (2, 2, 100, 300, 64, 37), (8, 2, 65, 65, 128, 16)],
)
def test_attention_matches_reference(heads, kv_heads, n_q, n_k, dim, window):
    q, k, v = random_qkv(heads, kv_heads, n_q, n_k, dim)
    out, lse = longsparse.attention(q, k, v, window=window, return_lse=True)
    ref, ref_lse = reference(q, k, v, window=window)
    assert out.shape == (heads, n_q, dim) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(lse, ref_lse, atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(longsparse.attention(q, k, v, window=window), out, atol=1e-6)


def test_scale_and_misaligned_input():
    q, k, v = random_qkv(2, 1, 50, 50, 64, seed=3)
    # A float32 array whose data starts 4 bytes into a buffer: not 16-byte aligned.
    raw = np.zeros(q.size + 1, dtype=np.float32)
    shifted = raw[1:].reshape(q.shape)
    shifted[...] = q
    out = longsparse.attention(shifted, k, v, scale=0.05)
    np.testing.assert_allclose(out, reference(q, k, v, scale=0.05)[0], atol=2e-5, rtol=1e-4)


def test_plan_attention_equals_dense_for_a_dense_plan():
    q, k, v = random_qkv(4, 2, 200, 200, 64, seed=5)
    plan = longsparse.Method("dense").plan(q, k, v)
    assert plan.density == pytest.approx(1.0)
    np.testing.assert_allclose(longsparse.attention(q, k, v, plan=plan), longsparse.attention(q, k, v), atol=1e-6)


def test_torch_tensors_are_read_in_place():
    torch = pytest.importorskip("torch")
    q, k, v = random_qkv(2, 1, 40, 40, 64, seed=7)
    out = longsparse.attention(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v))
    np.testing.assert_allclose(out, longsparse.attention(q, k, v), atol=0)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda q, k, v: (q.astype(np.float64), k, v), "q must be float32"),
        (lambda q, k, v: (q, k[:, :, ::2], v), "k must be C-contiguous"),
        (lambda q, k, v: (q, k, v.transpose(0, 2, 1)), "v must be C-contiguous"),
        (lambda q, k, v: (q, k, v[:, :5].copy()), "v must have k's shape"),
        (lambda q, k, v: (q[0], k, v), "q must have 3 dimensions"),
        (lambda q, k, v: (q.tolist(), k, v), "q must be an array"),
        (lambda q, k, v: (q, k[:, :10].copy(), v[:, :10].copy()), "queries"),
        (lambda q, k, v: (q[:3], k, v), "not a multiple"),
        (lambda q, k, v: (q, k[..., :32].copy(), v[..., :32].copy()), "head dimension"),
    ],
)
def test_bad_inputs_raise_value_error(change, message):
    q, k, v = random_qkv(4, 2, 20, 20, 64)
    with pytest.raises(ValueError, match=message):
        longsparse.attention(*change(q, k, v))


def test_non_causal_and_bad_window_raise():
    q, k, v = random_qkv(2, 1, 8, 8, 64)
    with pytest.raises(ValueError, match="causal"):
        longsparse.attention(q, k, v, causal=False)
    with pytest.raises(ValueError, match="window"):
        longsparse.attention(q, k, v, window=-1)
