"""Finite-sum model math (descentlab.models): gradients, minibatches, batch norm, references.

The math functions are compiled through one small njit wrapper each (cache=True;
the wrappers capture a hash of the math sources, so an edited compute.py never
runs from a stale cache). Gradients are checked against central finite
differences of the compiled value, the kernels against the NumPy reference
(models/reference.py), the loss conventions against torch (if installed).
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from descentlab._jit import CPU_KERNEL_OPTIONS
from descentlab.data.batches import host_permutation
from descentlab.kernels.compile import _source_salt
from descentlab.models import ModelSpec, compute, make_model
from descentlab.models import reference as ref
from descentlab.models.layout import check_layout

_OPTS = {k: v for k, v in CPU_KERNEL_OPTIONS.items() if k in ("error_model", "fastmath", "cache")}
_SALT = _source_salt([compute.value, compute.grad, compute.batch_grad, compute.hess])


def _wrappers(salt: str):  # type: ignore[no-untyped-def]
    def value_k(x, p, w, out, lo, hi):  # type: ignore[no-untyped-def]
        if salt != "":
            compute.value(x, p, w, out, lo, hi)

    def grad_k(x, p, w, g, lo, hi):  # type: ignore[no-untyped-def]
        if salt != "":
            compute.grad(x, p, w, g, lo, hi)

    def batch_grad_k(x, p, w, g, lo, hi, t, seed, gid0):  # type: ignore[no-untyped-def]
        if salt != "":
            compute.batch_grad(x, p, w, g, lo, hi, t, seed, gid0)

    def hess_k(x, p, w, h, lo, hi):  # type: ignore[no-untyped-def]
        if salt != "":
            compute.hess(x, p, w, h, lo, hi)

    return tuple(njit(**_OPTS)(f) for f in (value_k, grad_k, batch_grad_k, hess_k))


VALUE, GRAD, BATCH_GRAD, HESS = _wrappers(_SALT)

#: Relative error (in the 2-norm over a particle's gradient) of kernel vs reference, per dtype.
REL = {"float64": 1e-11, "float32": 1e-4}
#: Central finite differences: step and tolerance (relative, 2-norm).
FD_STEP = 1e-5
FD_REL = 1e-7

N_SAMPLES = 40
SIZES = [6, 10]  # batch-size schedule: one epoch of 6, then 10 (chunk 32 < 40: the full data in 2 chunks)
EPOCHS = [1, 0]
SEED = 1234

# name: (spec, n_in, n_out)
CONFIGS = {
    "product": (ModelSpec("product"), 1, 1),
    "linear": (ModelSpec("linear"), 3, 2),
    "logistic_binary": (ModelSpec("logistic"), 3, 1),
    "logistic_softmax": (ModelSpec("logistic"), 3, 4),
    "mlp_tanh_mse": (ModelSpec("mlp", (5,), "tanh", "mse"), 3, 2),
    "mlp_relu_softmax": (ModelSpec("mlp", (5, 4), "relu", "cross_entropy"), 3, 3),
    "mlp_sigmoid_binary": (ModelSpec("mlp", (4,), "sigmoid", "cross_entropy"), 3, 1),
    "mlp_linear_mse": (ModelSpec("mlp", (4,), "linear", "mse"), 3, 2),
    "bn_tanh_relu_softmax": (ModelSpec("mlp", (5, 4), ("tanh", "relu"), "cross_entropy", True), 3, 3),
    "bn_sigmoid_mse": (ModelSpec("mlp", (4,), "sigmoid", "mse", True), 3, 2),
    "bn_linear_binary": (ModelSpec("mlp", (3, 3), "linear", "cross_entropy", True), 2, 1),
}


def make_data(model, n=N_SAMPLES, seed=0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, model.n_in))
    if model.is_classifier:
        y = rng.integers(0, max(2, model.n_out), size=n)
    else:
        y = rng.normal(size=(n, model.n_out))
    return x, y


def make_params(model, n_particles=3, seed=1, scale=0.7):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    params = scale * rng.normal(size=(n_particles, model.dim))
    for e in model.layout:
        if e.kind == "bn_gamma":
            params[:, e.slice] = 1.0 + 0.3 * rng.normal(size=(n_particles, e.size))
    return params


def setup(name, *, shuffle=True, drop_last=False, metric="loss", sizes=SIZES, epochs=EPOCHS, n=N_SAMPLES, chunk=None):  # type: ignore[no-untyped-def]
    spec, n_in, n_out = CONFIGS[name]
    model = make_model(spec, n_in, n_out)
    x, y = make_data(model, n)
    p = model.pack(
        x, y, batch_sizes=sizes, batch_epochs=epochs, shuffle=shuffle, drop_last=drop_last, metric=metric, chunk=chunk
    )
    return model, x, y, p


def kvalue(model, params, p, dtype="float64"):  # type: ignore[no-untyped-def]
    xk = np.ascontiguousarray(params.T, dtype=dtype)
    w = np.zeros((model.scratch_rows_for(p), xk.shape[1]), dtype)
    out = np.zeros(xk.shape[1], dtype)
    VALUE(xk, p.astype(dtype), w, out, 0, xk.shape[1])
    return out


def kgrad(model, params, p, dtype="float64"):  # type: ignore[no-untyped-def]
    xk = np.ascontiguousarray(params.T, dtype=dtype)
    w = np.zeros((model.scratch_rows_for(p), xk.shape[1]), dtype)
    g = np.zeros_like(xk)
    GRAD(xk, p.astype(dtype), w, g, 0, xk.shape[1])
    return g.T


def kbatch(model, params, p, t, gid0=0, dtype="float64", seed=SEED):  # type: ignore[no-untyped-def]
    xk = np.ascontiguousarray(params.T, dtype=dtype)
    w = np.zeros((model.scratch_rows_for(p), xk.shape[1]), dtype)
    g = np.zeros_like(xk)
    BATCH_GRAD(xk, p.astype(dtype), w, g, 0, xk.shape[1], np.int64(t), np.uint64(seed), np.int64(gid0))
    return g.T


def rel_err(actual, expected):  # type: ignore[no-untyped-def]
    """Largest over particles of ||actual - expected|| / ||expected|| (rows are particles)."""
    actual = np.atleast_2d(actual)
    expected = np.atleast_2d(expected)
    num = np.linalg.norm(actual - expected, axis=-1)
    den = np.maximum(np.linalg.norm(expected, axis=-1), 1e-300)
    return float(np.max(num / den))


def fd_grad(f, params):  # type: ignore[no-untyped-def]
    """Central differences of f: (N, D) -> (N,) (all particles at once)."""
    out = np.empty_like(params)
    for d in range(params.shape[1]):
        up, dn = params.copy(), params.copy()
        up[:, d] += FD_STEP
        dn[:, d] -= FD_STEP
        out[:, d] = (f(up) - f(dn)) / (2 * FD_STEP)
    return out


def steps_to_check(n=N_SAMPLES, sizes=SIZES):  # type: ignore[no-untyped-def]
    """Steps in phase 1 (the first, the short last batch of epoch 0) and in phase 2."""
    per0 = -(-n // sizes[0])
    return [1, per0, per0 + 2]


# --------------------------------------------------------------------------- layout and API


@pytest.mark.parametrize("name", list(CONFIGS))
def test_layout_tiles_the_vector(name: str) -> None:
    spec, n_in, n_out = CONFIGS[name]
    model = make_model(spec, n_in, n_out)
    check_layout(model.layout, model.dim)
    if model.kind == "product":
        assert model.dim == 2
        return
    widths = model.widths
    expected = sum(widths[j + 1] * (widths[j] + 1) for j in range(len(widths) - 1))
    if spec.batch_norm:
        expected += 2 * sum(widths[1:-1])
    assert model.dim == expected
    kinds = [e.kind for e in model.layout]
    assert kinds.count("weight") == len(widths) - 1
    assert kinds.count("bn_gamma") == (len(widths) - 2 if spec.batch_norm else 0)
    first = model.layout[0]
    assert first.shape == (widths[1], widths[0]) and (first.fan_in, first.fan_out) == (widths[0], widths[1])


def test_math_is_shared_by_all_models() -> None:
    a = make_model(ModelSpec("mlp", (7, 3), "relu", "cross_entropy", True), 4, 5)
    b = make_model(ModelSpec("product"), 1, 1)
    assert a.value is b.value is compute.value
    assert a.batch_grad is b.batch_grad is compute.batch_grad
    assert a.is_classifier and not b.is_classifier
    assert make_model(ModelSpec("logistic"), 2, 1).loss == "cross_entropy"
    assert make_model(ModelSpec("linear"), 2, 1).loss == "mse"


def test_scratch_rows_cover_the_packed_model() -> None:
    for name in CONFIGS:
        model, _, _, p = setup(name)
        assert model.scratch_rows_for(p) <= model.scratch_rows(max(SIZES))
        _, _, _, p_whole = setup(name, chunk=N_SAMPLES)
        if model.kind != "product":
            assert model.scratch_rows_for(p_whole) == model.scratch_rows(N_SAMPLES)


def test_vectorisable_exp_tanh_sigmoid_are_accurate() -> None:
    """The arithmetic exp / tanh / sigmoid of compute.py within a few ulp of NumPy's (interpreter)."""
    v = np.concatenate([-np.logspace(-12, 2.5, 300), np.linspace(-30, 0, 301)])
    exp = np.array([compute.exp_nonpositive(t) for t in v])
    np.testing.assert_allclose(exp, np.exp(v), rtol=4e-16, atol=0)
    both = np.concatenate([v, -v])
    tanh = np.array([compute.tanh_vec(t) for t in both])
    np.testing.assert_allclose(tanh, np.tanh(both), rtol=8e-16, atol=0)
    sig = np.array([compute.sigmoid_vec(t) for t in both])
    np.testing.assert_allclose(sig, 1.0 / (1.0 + np.exp(-both)), rtol=8e-16, atol=1e-300)
    assert np.isnan(compute.tanh_vec(np.nan)) and np.isnan(compute.exp_nonpositive(np.nan))
    assert compute.exp_nonpositive(-np.inf) < 1e-307 and compute.tanh_vec(-np.inf) == -1.0


# --------------------------------------------------------------------------- gradients vs finite differences


@pytest.mark.parametrize("name", list(CONFIGS))
def test_grad_matches_finite_differences(name: str) -> None:
    model, _, _, p = setup(name)
    params = make_params(model)
    g = kgrad(model, params, p)
    fd = fd_grad(lambda q: kvalue(model, q, p), params)
    assert np.linalg.norm(g) > 1e-3
    assert rel_err(g, fd) <= FD_REL


@pytest.mark.parametrize("name", list(CONFIGS))
def test_batch_grad_matches_finite_differences_of_the_batch_loss(name: str) -> None:
    model, x, y, p = setup(name)
    params = make_params(model, seed=2)
    gid0 = 5
    for t in steps_to_check():
        g = kbatch(model, params, p, t, gid0=gid0)
        for k in range(params.shape[0]):
            idx = ref.batch_indices(N_SAMPLES, t, SEED, gid0 + k, SIZES, EPOCHS, True, False)
            p_batch = model.pack(x[idx], y[idx])  # the batch as a data set: value = batch loss
            fd = fd_grad(lambda q, pb=p_batch: kvalue(model, q, pb), params[k : k + 1])
            assert rel_err(g[k], fd[0]) <= FD_REL, (t, k)


# --------------------------------------------------------------------------- kernels vs the NumPy reference


@pytest.mark.parametrize("name", list(CONFIGS))
def test_kernels_match_reference(name: str) -> None:
    model, x, y, p = setup(name)
    params = make_params(model, seed=3)
    np.testing.assert_allclose(kvalue(model, params, p), ref.loss(model, params, x, y), rtol=1e-12)
    assert rel_err(kgrad(model, params, p), ref.gradient(model, params, x, y)) <= REL["float64"]
    gid0 = 11
    for t in steps_to_check():
        expected = ref.batch_gradient(
            model, params, x, y, t, SEED, gid0 + np.arange(3), sizes=SIZES, epochs=EPOCHS, shuffle=True, drop_last=False
        )
        assert rel_err(kbatch(model, params, p, t, gid0=gid0), expected) <= REL["float64"], t


@pytest.mark.parametrize("name", ["linear", "bn_tanh_relu_softmax", "mlp_sigmoid_binary"])
def test_float32_kernels_match_reference(name: str) -> None:
    model, x, y, _ = setup(name)
    params = make_params(model, seed=4)
    p32 = params.astype(np.float32).astype(np.float64)  # the reference sees the same rounded inputs
    x32 = x.astype(np.float32).astype(np.float64)
    if not model.is_classifier:
        y = y.astype(np.float32).astype(np.float64)
    p_ref = model.pack(x32, y, batch_sizes=SIZES, batch_epochs=EPOCHS, shuffle=True)
    out = kvalue(model, params, p_ref, "float32")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref.loss(model, p32, x32, y), rtol=REL["float32"])
    assert rel_err(kgrad(model, params, p_ref, "float32"), ref.gradient(model, p32, x32, y)) <= REL["float32"]
    t = steps_to_check()[1]
    g = kbatch(model, params, p_ref, t, dtype="float32")
    expected = ref.batch_gradient(model, p32, x32, y, t, SEED, np.arange(3), sizes=SIZES, epochs=EPOCHS,
                                  shuffle=True, drop_last=False)  # fmt: skip
    assert g.dtype == np.float32
    assert rel_err(g, expected) <= REL["float32"]


@pytest.mark.parametrize("name", ["logistic_binary", "logistic_softmax", "bn_tanh_relu_softmax"])
def test_accuracy_metric_matches_reference(name: str) -> None:
    model, x, y, p = setup(name, metric="accuracy")
    params = make_params(model, n_particles=6, seed=5)
    acc = kvalue(model, params, p)
    np.testing.assert_allclose(acc, ref.accuracy(model, params, x, y), rtol=0, atol=1e-15)
    assert np.all((acc * N_SAMPLES) == np.round(acc * N_SAMPLES))


def test_accuracy_known_answer() -> None:
    """A linear classifier with W = I predicts the largest feature: all right, or (W = -I) all wrong."""
    model = make_model(ModelSpec("logistic"), 3, 3)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(25, 3))
    y = np.argmax(x, axis=1)
    p = model.pack(x, y, metric="accuracy")
    params = np.zeros((2, model.dim))
    params[0, :9] = np.eye(3).ravel()
    params[1, :9] = -np.eye(3).ravel()
    np.testing.assert_array_equal(kvalue(model, params, p), [1.0, np.mean(np.argmin(x, axis=1) == y)])


def test_chunking_does_not_change_the_full_data_loss() -> None:
    """Full-data value/grad in chunks of 7 (6 chunks, Chan-merged BN statistics, one backward pass per BN
    layer) equal the single-chunk result."""
    name = "bn_tanh_relu_softmax"
    model, _, _, p_small = setup(name, sizes=[5], epochs=[], chunk=7)
    _, _, _, p_whole = setup(name, sizes=[5], epochs=[], chunk=N_SAMPLES)
    params = make_params(model, seed=6)
    np.testing.assert_allclose(kvalue(model, params, p_small), kvalue(model, params, p_whole), rtol=1e-13)
    assert rel_err(kgrad(model, params, p_small), kgrad(model, params, p_whole)) <= 1e-12


# --------------------------------------------------------------------------- minibatches


@pytest.mark.parametrize("name", ["mlp_tanh_mse", "bn_tanh_relu_softmax"])
def test_full_batch_equals_full_gradient(name: str) -> None:
    """A batch of all n samples is the full data set: batch_grad == grad (batch norm statistics included)."""
    for shuffle in (False, True):
        model, _, _, p = setup(name, shuffle=shuffle, sizes=[N_SAMPLES], epochs=[])
        params = make_params(model, seed=8)
        full = kgrad(model, params, p)
        for t in (1, 2, 5):
            batch = kbatch(model, params, p, t, gid0=3)
            if shuffle:
                assert rel_err(batch, full) <= 1e-13
            else:
                np.testing.assert_array_equal(batch, full)


def _consecutive_batches(n, sizes, epochs, drop_last, steps):  # type: ignore[no-untyped-def]
    """Batches of an unshuffled schedule by enumeration (independent of batches.batch_of_step)."""
    out = []
    for phase, size in enumerate(sizes):
        n_epochs = epochs[phase] if phase < len(sizes) - 1 else steps
        for _ in range(n_epochs):
            for start in range(0, n, size):
                if drop_last and start + size > n:
                    break
                out.append(np.arange(start, min(start + size, n)))
    return out[:steps]


@pytest.mark.parametrize("drop_last", [False, True])
def test_unshuffled_batches_are_consecutive_samples(drop_last: bool) -> None:
    model, x, y, p = setup("mlp_relu_softmax", shuffle=False, drop_last=drop_last, sizes=[4, 7], epochs=[2], n=18)
    params = make_params(model, seed=9)
    batches = _consecutive_batches(18, [4, 7], [2], drop_last, 16)
    sizes_seen = set()
    for t, idx in enumerate(batches, start=1):
        sizes_seen.add(len(idx))
        expected = ref.gradient(model, params, x[idx], y[idx])
        assert rel_err(kbatch(model, params, p, t), expected) <= REL["float64"], t
    assert sizes_seen == ({4, 7} if drop_last else {2, 4, 7})


def test_shuffled_batches_depend_on_particle_and_epoch_only() -> None:
    model, x, y, p = setup("bn_tanh_relu_softmax")
    params = make_params(model, n_particles=4, seed=10)
    same = np.repeat(params[:1], 4, axis=0)  # four copies of one particle
    t = 3
    g = kbatch(model, same, p, t, gid0=20)
    # different global ids draw different batches
    assert all(rel_err(g[k], g[0]) > 1e-3 for k in range(1, 4))
    # the id, not the position in the block, decides: particle 22 at column 0 of a block starting at 22
    np.testing.assert_array_equal(kbatch(model, same[:1], p, t, gid0=22)[0], g[2])
    # the batch is the epoch's permutation of (seed, id): as the reference (the host permutation)
    idx = host_permutation(N_SAMPLES, SEED, 22, 0)[2 * SIZES[0] : 3 * SIZES[0]]
    assert rel_err(g[2], ref.gradient(model, same[:1], x[idx], y[idx])[0]) <= REL["float64"]
    # another seed, another batch
    assert rel_err(kbatch(model, same[:1], p, t, gid0=22, seed=SEED + 1)[0], g[2]) > 1e-3


def test_single_particle_calls_reproduce_the_block_bit_for_bit() -> None:
    """The CPU kernel replays flagged particles with lo = i, hi = i + 1: the result must not depend on the block."""
    model, _, _, p = setup("bn_tanh_relu_softmax")
    params = make_params(model, n_particles=37, seed=11)  # an odd count: vector body and remainder
    xk = np.ascontiguousarray(params.T)
    w = np.zeros((model.scratch_rows_for(p), xk.shape[1]))
    g_block = np.zeros_like(xk)
    BATCH_GRAD(xk, p, w, g_block, 0, xk.shape[1], np.int64(4), np.uint64(SEED), np.int64(100))
    g_one = np.full_like(xk, np.nan)
    v_block = np.zeros(xk.shape[1])
    v_one = np.zeros(xk.shape[1])
    VALUE(xk, p, w, v_block, 0, xk.shape[1])
    for i in range(xk.shape[1]):
        BATCH_GRAD(xk, p, w, g_one, i, i + 1, np.int64(4), np.uint64(SEED), np.int64(100))
        VALUE(xk, p, w, v_one, i, i + 1)
    np.testing.assert_array_equal(g_one, g_block)
    np.testing.assert_array_equal(v_one, v_block)


# --------------------------------------------------------------------------- interpreter, compilation, guards


def test_interpreter_agrees_with_compiled() -> None:
    """The same source runs in plain Python on NumPy arrays (CUDA simulator, debugging)."""
    spec = ModelSpec("mlp", (3,), "tanh", "cross_entropy", True)
    model = make_model(spec, 2, 3)
    x, y = make_data(model, n=9)
    p = model.pack(x, y, batch_sizes=[4], shuffle=True, chunk=4)  # full data in 3 chunks
    params = make_params(model, n_particles=2, seed=12)
    xk = np.ascontiguousarray(params.T)
    w = np.zeros((model.scratch_rows_for(p), 2))
    out, g, gb = np.zeros(2), np.zeros_like(xk), np.zeros_like(xk)
    with np.errstate(over="ignore"):
        compute.value(xk, p, w, out, 0, 2)
        compute.grad(xk, p, w, g, 0, 2)
        compute.batch_grad(xk, p, w, gb, 0, 2, np.int64(3), np.uint64(SEED), np.int64(0))
    np.testing.assert_allclose(out, kvalue(model, params, p), rtol=1e-13)
    assert rel_err(g.T, kgrad(model, params, p)) <= 1e-13
    assert rel_err(gb.T, kbatch(model, params, p, 3)) <= 1e-13


def test_no_recompilation_across_architectures_and_data() -> None:
    for name in ("linear", "bn_tanh_relu_softmax", "product"):
        model, _, _, p = setup(name)
        params = make_params(model, n_particles=2)
        kvalue(model, params, p)
        kbatch(model, params, p, 2)
    for disp in (VALUE, BATCH_GRAD):
        f64 = [sig for sig in disp.signatures if str(sig[0].dtype) == "float64"]
        assert len(f64) == 1


def test_hess_is_nan() -> None:
    model, _, _, p = setup("mlp_tanh_mse")
    xk = np.ascontiguousarray(make_params(model, n_particles=2).T)
    h = np.zeros((model.dim, model.dim, 2))
    HESS(xk, p, np.zeros((model.scratch_rows_for(p), 2)), h, 0, 2)
    assert np.all(np.isnan(h))


def test_too_little_scratch_or_wrong_dim_gives_nan_not_a_crash() -> None:
    model, _, _, p = setup("bn_tanh_relu_softmax")
    params = make_params(model, n_particles=2)
    rows = model.scratch_rows_for(p)
    for xk, w in (
        (np.ascontiguousarray(params.T), np.zeros((rows - 1, 2))),
        (np.ascontiguousarray(params[:, :-1].T), np.zeros((rows, 2))),
    ):
        out, g = np.zeros(2), np.zeros_like(xk)
        VALUE(xk, p, w, out, 0, 2)
        BATCH_GRAD(xk, p, w, g, 0, 2, np.int64(1), np.uint64(0), np.int64(0))
        assert np.all(np.isnan(out)) and np.all(np.isnan(g))
        GRAD(xk, p, w, g, 0, 2)
        assert np.all(np.isnan(g))


@pytest.mark.parametrize("name", ["bn_tanh_relu_softmax", "mlp_sigmoid_binary"])
def test_a_diverged_particle_does_not_touch_the_others(name: str) -> None:
    """NaN/Inf is an outcome: the particle's loss and gradient are NaN, its neighbours' are unchanged."""
    model, _, _, p = setup(name)
    params = make_params(model, n_particles=4, seed=16)
    clean = (kvalue(model, params, p), kgrad(model, params, p), kbatch(model, params, p, 3))
    params[1, 0] = np.nan
    params[2, -1] = np.inf
    value, grad, batch = kvalue(model, params, p), kgrad(model, params, p), kbatch(model, params, p, 3)
    # (not every entry: relu'(NaN) = 0, as torch's threshold_backward, masks some)
    assert np.isnan(value[1]) and np.isnan(grad[1]).any() and np.isnan(batch[1]).any()
    assert not np.isfinite(value[2])  # (a gradient may stay finite: sigmoid(+inf) = 1)
    for got, want in zip((value, grad, batch), clean, strict=True):
        np.testing.assert_array_equal(got[[0, 3]], want[[0, 3]])


def test_pack_header_and_validation() -> None:
    model = make_model(ModelSpec("mlp", (4,), "relu", "cross_entropy"), 2, 3)
    x = np.zeros((10, 2))
    y = np.arange(10) % 3
    p = model.pack(x, y, batch_sizes=[4, 20], batch_epochs=[3], shuffle=True, drop_last=False)
    assert p[compute.H_N] == 10 and p[compute.H_CHUNK] == 10 and p[compute.H_PHASES] == 2
    o_acts, o_sizes, o_epochs, o_x, o_y = compute.data_offsets(p)
    assert o_y - o_x == 20
    assert list(p[o_sizes : o_sizes + 2]) == [4, 10] and p[o_epochs] == 3
    assert list(p[o_y:]) == list(y) and len(p) == o_y + 10
    assert p[o_acts] == compute.ACT_RELU and p[o_acts + 1] == compute.ACT_LINEAR
    with pytest.raises(ValueError, match="y_data"):
        model.pack(x, np.full(10, 3))
    with pytest.raises(ValueError, match="x_data"):
        model.pack(np.zeros((10, 3)), y)
    with pytest.raises(ValueError, match="batch_epochs"):
        model.pack(x, y, batch_sizes=[2, 4, 5], batch_epochs=[1])
    with pytest.raises(ValueError, match="batch_sizes"):
        model.pack(x, y, batch_sizes=[11], drop_last=True)
    with pytest.raises(ValueError, match="chunk"):
        model.pack(x, y, batch_sizes=[8], chunk=4)
    regression = make_model(ModelSpec("linear"), 2, 1)
    with pytest.raises(ValueError, match="metric"):
        regression.pack(x, np.zeros(10), metric="accuracy")
    with pytest.raises(ValueError, match=r"model\.hidden"):
        make_model(ModelSpec("linear", hidden=(3,)), 2, 1)
    with pytest.raises(ValueError, match=r"model\.activation"):
        make_model(ModelSpec("mlp", (3,), "softplus"), 2, 1)
    with pytest.raises(ValueError, match=r"model\.kind"):
        make_model(ModelSpec("product"), 2, 1)
    with pytest.raises(ValueError, match=r"model\.batch_norm"):
        make_model(ModelSpec("mlp", (), batch_norm=True), 2, 1)


# --------------------------------------------------------------------------- reference tools


def test_activation_stats_known_answers() -> None:
    """Identity weights pass the inputs through; a linear regression's gradient is 2 (z - y) / n_out per sample."""
    model = make_model(ModelSpec("mlp", (3,), "linear", "mse"), 3, 2)
    x, y = make_data(model, n=30)
    params = make_params(model, n_particles=2, seed=13)
    params[:, :9] = np.eye(3).ravel()
    params[:, 9:12] = 0.0
    stats = ref.activation_stats(model, params, x, y)
    assert stats.act_mean.shape == (2, 2) and stats.names == ("layer0", "layer1")
    np.testing.assert_allclose(stats.act_mean[:, 0], x.mean(), rtol=1e-12)
    np.testing.assert_allclose(stats.act_var[:, 0], x.var(), rtol=1e-12)
    lin = make_model(ModelSpec("linear"), 3, 2)
    lp = make_params(lin, n_particles=2, seed=14)
    s = ref.activation_stats(lin, lp, x, y)
    z = np.einsum("Noi,si->Nso", lp[:, :6].reshape(2, 2, 3), x) + lp[:, None, 6:8]
    delta = 2 * (z - y[None]) / 2
    np.testing.assert_allclose(s.grad_mean[:, 0], delta.mean(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(s.grad_var[:, 0], delta.var(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(s.act_mean[:, 0], z.mean(axis=(1, 2)), rtol=1e-12)


@pytest.mark.parametrize("loss", ["softmax", "binary", "mse"])
def test_conventions_match_torch(loss: str) -> None:
    """Loss, batch norm (training mode) and gradients as torch.nn with float64 (batch_grad on an unshuffled batch)."""
    torch = pytest.importorskip("torch")
    n_out = {"softmax": 3, "binary": 1, "mse": 2}[loss]
    spec = ModelSpec("mlp", (5, 4), ("tanh", "relu"), "mse" if loss == "mse" else "cross_entropy", True)
    model = make_model(spec, 3, n_out)
    x, y = make_data(model, n=24)
    batch = 8
    p = model.pack(x, y, batch_sizes=[batch], shuffle=False)
    params = make_params(model, n_particles=1, seed=15)
    g = kbatch(model, params, p, 2)[0]  # step 2: samples 8..15
    value = kvalue(model, params, p)[0]

    def torch_loss(xs, ys):  # type: ignore[no-untyped-def]
        tp = torch.tensor(params[0], dtype=torch.float64, requires_grad=True)
        take = {e.name: tp[e.start : e.stop].reshape(e.shape) for e in model.layout}
        h = torch.tensor(xs, dtype=torch.float64)
        for j, act in enumerate((torch.tanh, torch.relu)):
            a = h @ take[f"layer{j}.weight"].T + take[f"layer{j}.bias"]
            a = torch.nn.functional.batch_norm(
                a, None, None, take[f"bn{j}.gamma"], take[f"bn{j}.beta"], training=True, eps=1e-5
            )
            h = act(a)
        z = h @ take["layer2.weight"].T + take["layer2.bias"]
        if loss == "softmax":
            out = torch.nn.functional.cross_entropy(z, torch.tensor(ys, dtype=torch.int64))
        elif loss == "binary":
            out = torch.nn.functional.binary_cross_entropy_with_logits(z[:, 0], torch.tensor(ys, dtype=torch.float64))
        else:
            out = torch.nn.functional.mse_loss(z, torch.tensor(ys, dtype=torch.float64))
        out.backward()
        return float(out.detach()), tp.grad.numpy()

    full, _ = torch_loss(x, y)
    np.testing.assert_allclose(value, full, rtol=1e-12)
    _, tg = torch_loss(x[8:16], y[8:16])
    assert rel_err(g, tg) <= 1e-11
