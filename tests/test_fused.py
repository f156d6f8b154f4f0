"""The fused `imex` kernels against the readable per-step loop, gradcheck and input errors.

Tolerances. In float64 the fused kernels and the eager loop evaluate the same expressions
and differ only in the order of the sums (convolution taps, matrix products, the
per-sample gradient sums); each step adds a few ulp (~1e-16) of relative difference, and
over the ≤ 12 steps drawn here the observed differences stay below 1e-14. ``rtol=1e-10``
leaves four orders of magnitude of room while still failing on any wrong term, whose
effect is of order dt·(a gradient) ≫ 1e-10.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from oscsim import ImexField, imex_sequence
from oscsim.errors import OscsimInputError
from oscsim.fused import _numba_kernels as kernels
from oscsim.fused import _workspace, fused_supports, map_inputs

BACKENDS_FOR = {"local": ("numba", "torch"), "none": ("numba", "torch"), "global": ("torch",)}


def _run(fused, drive, position0, velocity0, kernel_position, kernel_velocity, bias, gamma,
         epsilon, dt, *, coupling, activation="tanh", **options):  # fmt: skip
    field = ImexField(coupling, kernel_position, kernel_velocity, bias, gamma, epsilon, activation)
    return imex_sequence(field, drive, position0, velocity0, dt, fused=fused, **options)


def fused_imex(*args, **options):
    """`oscsim.imex_sequence` through the fused kernels, on the flat argument list of
    `make_case`."""
    return _run(True, *args, **options)


def loop_imex(*args, **options):
    """`oscsim.imex_sequence` through the readable loop (the reference)."""
    return _run(False, *args, **options)


def make_case(
    coupling: str,
    grid: tuple[int, ...],
    channels: int = 1,
    k: int = 3,
    *,
    steps: int = 4,
    batch: int = 2,
    dtype: torch.dtype = torch.float64,
    per_cell_bias: bool = False,
    dt: float = 0.2,
    seed: int = 0,
) -> list:
    """The drive, the initial state, the five tensors of an `ImexField` and dt, every
    tensor requiring grad."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype)

    state = (batch, channels, *grid)
    cells = math.prod(grid)
    if coupling == "local":
        shape = (channels, channels) + (k,) * len(grid)
        kernels_ = [rand(*shape, scale=0.6 / math.sqrt(channels * k ** len(grid))) for _ in "yz"]
    elif coupling == "global":
        n = channels * cells
        kernels_ = [rand(n, n, scale=0.6 / math.sqrt(n)) for _ in "yz"]
    else:
        kernels_ = [None, None]
    bias = rand(*((channels, *grid) if per_cell_bias else (channels,)), scale=0.3)
    gamma = (torch.rand(channels, generator=g, dtype=torch.float64) * 2).to(dtype)
    epsilon = (torch.rand(channels, generator=g, dtype=torch.float64) * 2).to(dtype)
    args = [
        rand(steps, *state),
        rand(*state),
        rand(*state, scale=0.5),
        *kernels_,
        bias,
        gamma,
        epsilon,
        torch.tensor(dt, dtype=dtype),
    ]
    return [a.requires_grad_() if a is not None else None for a in args]


def run_with_grads(fn, args, **options):
    """Outputs and the gradients of a fixed random functional of both outputs."""
    y, z = fn(*args, **options)
    g = torch.Generator().manual_seed(123)
    wy = torch.randn(y.shape, generator=g, dtype=torch.float64).to(y.dtype)
    wz = torch.randn(z.shape, generator=g, dtype=torch.float64).to(z.dtype)
    loss = (wy * y).sum() + (wz * torch.tanh(z)).sum()
    inputs = [a for a in args if isinstance(a, torch.Tensor)]
    return y.detach(), z.detach(), torch.autograd.grad(loss, inputs)


def assert_close_all(got, expected, *, rtol: float, atol: float = 0.0) -> None:
    for a, b in zip(got, expected, strict=True):
        scale = max(float(b.abs().max()), 1e-300)
        np.testing.assert_allclose(
            a.detach().double().numpy(), b.detach().double().numpy(), rtol=rtol, atol=atol * scale
        )


def compare(args, *, coupling, activation="tanh", return_sequence=False, backend=None):
    options = dict(coupling=coupling, activation=activation, return_sequence=return_sequence)
    y1, z1, g1 = run_with_grads(fused_imex, args, backend=backend, **options)
    y2, z2, g2 = run_with_grads(loop_imex, args, **options)
    assert_close_all([y1, z1, *g1], [y2, z2, *g2], rtol=1e-10, atol=1e-12)


# --- gradcheck -------------------------------------------------------------------------

GRADCHECK_CASES = [
    ("local", (6,), 1, 3, "tanh", False),
    ("local", (5,), 2, 3, "identity", True),
    ("local", (4, 5), 1, 3, "tanh", False),
    ("local", (5, 5), 2, 5, "tanh", True),
    ("local", (5, 6), 1, 5, "identity", False),
    ("global", (3, 2), 2, 0, "tanh", False),
    ("global", (4,), 1, 0, "identity", True),
    ("none", (3, 2), 2, 0, "tanh", True),
    ("none", (4,), 1, 0, "identity", False),
]


@pytest.mark.parametrize("coupling, grid, channels, k, activation, per_cell", GRADCHECK_CASES)
def test_gradcheck(coupling, grid, channels, k, activation, per_cell):
    for backend in BACKENDS_FOR[coupling]:
        args = make_case(coupling, grid, channels, k, steps=3, per_cell_bias=per_cell)
        # T=3 with a backward pass uses checkpoints every 2 steps: a full and a short segment
        for return_sequence in (False, True):

            def fn(*a, rs=return_sequence, be=backend):
                return fused_imex(
                    *a, coupling=coupling, activation=activation, return_sequence=rs, backend=be
                )

            assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-7, rtol=1e-5)


# --- fused equals eager ----------------------------------------------------------------


@st.composite
def cases(draw):
    coupling = draw(st.sampled_from(["local", "global", "none"]))
    ndim = draw(st.sampled_from([1, 2]))
    k = draw(st.sampled_from([1, 3, 5])) if coupling == "local" else 0
    low = max(k, 1)
    grid = tuple(draw(st.integers(low, low + 3)) for _ in range(ndim))
    if coupling == "global":
        grid = tuple(min(g, 4) for g in grid)
    channels = draw(st.integers(1, 3 if coupling != "global" else 2))
    return dict(
        coupling=coupling,
        backend=draw(st.sampled_from(BACKENDS_FOR[coupling])),
        activation=draw(st.sampled_from(["tanh", "identity"])),
        return_sequence=draw(st.booleans()),
        args=make_case(
            coupling,
            grid,
            channels,
            k,
            steps=draw(st.integers(1, 12)),
            batch=draw(st.integers(1, 3)),
            per_cell_bias=draw(st.booleans()),
            dt=draw(st.floats(0.01, 0.5)),
            seed=draw(st.integers(0, 2**16)),
        ),
    )


@given(cases())
def test_fused_equals_eager(case):
    compare(
        case["args"],
        coupling=case["coupling"],
        activation=case["activation"],
        return_sequence=case["return_sequence"],
        backend=case["backend"],
    )


@pytest.mark.parametrize("steps", [1, 2, 9, 10, 11, 17])
def test_checkpoint_segments(steps):
    """Every length of the last recomputed segment (every = ⌈√T⌉ steps)."""
    compare(make_case("local", (4, 5), 2, 3, steps=steps, batch=3), coupling="local")


@pytest.mark.parametrize("coupling", ["local", "global", "none"])
@pytest.mark.parametrize("ndim", [1, 2])
def test_fused_equals_eager_every_coupling(coupling, ndim):
    grid = (7,) if ndim == 1 else (4, 5)
    for backend in BACKENDS_FOR[coupling]:
        args = make_case(coupling, grid, 2, 3, steps=7, batch=3, per_cell_bias=True)
        compare(args, coupling=coupling, backend=backend)


def test_float32_matches_float64_eager():
    """The float32 kernel (the training dtype, with its own tanh) within float32 accuracy."""
    args64 = make_case("local", (16, 16), 1, 3, steps=60, batch=4, dt=0.042)
    args32 = [a.detach().float().requires_grad_() if a is not None else None for a in args64]
    y32, z32, g32 = run_with_grads(fused_imex, args32, coupling="local")
    y64, z64, g64 = run_with_grads(loop_imex, args64, coupling="local")
    assert y32.dtype == torch.float32 and all(g.dtype == torch.float32 for g in g32)
    assert_close_all([y32, z32], [y64, z64], rtol=1e-4, atol=1e-5)
    assert_close_all(g32, g64, rtol=1e-3, atol=1e-4)


def test_float32_tanh_within_six_ulp():
    """The float32 kernels' own tanh (libm's tanhf would not vectorise)."""
    from numba import njit

    @njit(error_model="numpy")
    def apply(x):
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            out[i] = kernels.act_tanh(x[i])
        return out

    x = np.concatenate(
        [np.linspace(-12, 12, 400_001), np.linspace(-1e-3, 1e-3, 20_001), [0.0, 1e-30, -40.0]]
    ).astype(np.float32)
    got = apply(x)
    assert got.dtype == np.float32
    exact = np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(got - exact) <= 6 * ulp)
    assert np.all(np.abs(got) <= 1.0)


# --- return_sequence, no-grad and layout -----------------------------------------------


@pytest.mark.parametrize("coupling", ["local", "global"])
def test_return_sequence_semantics(coupling):
    args = make_case(coupling, (4, 4), 1, 3, steps=6)
    ys, zs = fused_imex(*args, coupling=coupling, return_sequence=True)
    y, z = fused_imex(*args, coupling=coupling)
    assert ys.shape == (6, 2, 1, 4, 4) and zs.shape == ys.shape and y.shape == (2, 1, 4, 4)
    torch.testing.assert_close(ys[-1], y, rtol=0, atol=0)
    torch.testing.assert_close(zs[-1], z, rtol=0, atol=0)
    for n in (0, 3):  # the state after n+1 steps
        y_n, _ = fused_imex(args[0][: n + 1], *args[1:], coupling=coupling)
        torch.testing.assert_close(ys[n], y_n, rtol=0, atol=0)


def test_gradient_through_one_output_only():
    args = make_case("local", (5, 5), 1, 3, steps=5)
    ys, _ = fused_imex(*args, coupling="local", return_sequence=True)
    eys, _ = loop_imex(*args, coupling="local", return_sequence=True)
    inputs = [a for a in args if a is not None]
    got = torch.autograd.grad(ys[2].sum(), inputs)
    expected = torch.autograd.grad(eys[2].sum(), inputs)
    assert_close_all(got, expected, rtol=1e-10, atol=1e-12)


def test_no_grad_path_equals_grad_path():
    args = make_case("local", (6, 6), 2, 3, steps=9, batch=3)
    y, z = fused_imex(*args, coupling="local")
    with torch.no_grad():
        for return_sequence in (False, True):
            y2, z2 = fused_imex(*args, coupling="local", return_sequence=return_sequence)
            torch.testing.assert_close(y2[-1] if return_sequence else y2, y, rtol=0, atol=0)
            torch.testing.assert_close(z2[-1] if return_sequence else z2, z, rtol=0, atol=0)
    assert not y2.requires_grad


def test_threads_change_results_only_by_rounding():
    """The batch is split over threads; only the order of the kernel-gradient sums changes."""
    args = make_case("local", (6, 6), 1, 3, steps=8, batch=5)
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 2):
            torch.set_num_threads(threads)
            y, z, grads = run_with_grads(fused_imex, args, coupling="local")
            results.append([y, z, *grads])
    finally:
        torch.set_num_threads(before)
    for a, b in zip(results[1], results[2], strict=True):  # same threads: same bits
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert_close_all(results[1], results[0], rtol=1e-13, atol=1e-15)


def test_non_contiguous_inputs_and_float_dt():
    args = make_case("local", (5, 6), 1, 3, steps=4, batch=3)
    drive = args[0].detach().transpose(0, 1).contiguous().transpose(0, 1).requires_grad_()
    assert not drive.is_contiguous()
    args = [drive, *args[1:8], 0.2]
    compare(args, coupling="local")


def test_workspace_never_hands_out_a_buffer_in_use():
    shape = (600, 600)  # over the 1 MiB below which the cache is not used
    a = _workspace.empty(shape, torch.float32)
    start = a.data_ptr()
    view = a[1:]  # keeps the buffer in use after `a` is gone
    del a
    b = _workspace.empty(shape, torch.float32)
    assert b.data_ptr() != start
    del view
    c = _workspace.empty(shape, torch.float32, zero=True)
    assert c.data_ptr() == start  # reused once idle, and zeroed on request
    assert float(c.abs().sum()) == 0.0


# --- support and errors ----------------------------------------------------------------


def test_fused_supports():
    for coupling in ("local", "global", "none"):
        for ndim in (1, 2):
            assert fused_supports(coupling, ndim, torch.device("cpu"))
            assert fused_supports(coupling, ndim, "cuda")
    assert not fused_supports("locally_connected", 2, "cpu")
    assert not fused_supports("local", 3, "cpu")
    assert not fused_supports("local", 2, "meta")


def _base():
    return make_case("local", (5, 5), 1, 3, steps=3)


def _replace(index, value):
    args = _base()
    args[index] = value
    return args


ERROR_CASES = [
    ("coupling", dict(coupling="locally_connected"), _base, "'locally_connected' coupling"),
    ("coupling", dict(coupling="nearest"), _base, "coupling must be one of"),
    ("activation", dict(activation="relu"), _base, "activation must be one of"),
    ("dtype", {}, lambda: _replace(1, torch.zeros(2, 1, 5, 5, dtype=torch.float32)), "position0"),
    ("int drive", {}, lambda: _replace(0, torch.zeros(3, 2, 1, 5, 5, dtype=torch.int64)), "drive"),
    ("state shape", {}, lambda: _replace(2, torch.zeros(2, 1, 5, 4)), "velocity0 must have shape"),
    ("drive ndim", {}, lambda: _replace(0, torch.zeros(3, 2, 1, 5, 5, 1)), "drive must have shape"),
    ("no steps", {}, lambda: _replace(0, torch.zeros(0, 2, 1, 5, 5)), "at least one time step"),
    ("even kernel", {}, lambda: _replace(3, torch.zeros(1, 1, 2, 2)), "odd k"),
    ("kernel > grid", {}, lambda: _replace(3, torch.zeros(1, 1, 7, 7)), "smaller than the kernel"),
    ("gamma", {}, lambda: _replace(6, torch.ones(2)), "gamma must have shape (1,)"),
    ("bias", {}, lambda: _replace(5, torch.zeros(1, 5)), "bias must have shape"),
    ("dt < 0", {}, lambda: _replace(8, -0.1), "dt must be finite and > 0"),
    ("dt nan", {}, lambda: _replace(8, float("nan")), "dt must be finite and > 0"),
    ("dt shape", {}, lambda: _replace(8, torch.ones(1)), "dt must be a float or a 0-dim"),
    ("kernel None", {}, lambda: _replace(4, None), "kernel_velocity must be a torch.Tensor"),
    ("backend", dict(backend="cuda"), _base, "backend must be one of"),
]


@pytest.mark.parametrize(
    "label, options, build, message", ERROR_CASES, ids=[e[0] for e in ERROR_CASES]
)
def test_input_errors(label, options, build, message):
    kwargs = dict(coupling="local") | options
    for fn in (fused_imex, loop_imex):
        if "backend" in kwargs and fn is loop_imex:
            continue
        with pytest.raises(OscsimInputError, match=_escape(message)):
            fn(*build(), **kwargs)


def test_errors_for_global_and_none():
    args = make_case("global", (3, 3), 1, steps=2)
    args[3] = torch.zeros(9, 8)
    with pytest.raises(OscsimInputError, match=_escape("(C·N, C·N) = (9, 9)")):
        fused_imex(*args, coupling="global")
    with pytest.raises(OscsimInputError, match="must be None for coupling 'none'"):
        fused_imex(*make_case("local", (3, 3), 1, 3, steps=2), coupling="none")
    with pytest.raises(OscsimInputError, match="backend 'numba' runs 'local' and 'none'"):
        fused_imex(*make_case("global", (3,), 1, steps=2), coupling="global", backend="numba")


def _escape(text: str) -> str:
    import re

    return re.escape(text)


def test_batch_chunks_change_results_only_by_rounding(monkeypatch):
    """A thread's samples run in chunks of `CHUNK_CELLS` cells: states are bitwise those of
    one chunk, gradients differ only in the order of the kernel-gradient sums."""
    args = make_case("local", (4, 5), 2, 3, steps=9, batch=5, per_cell_bias=True)
    whole = run_with_grads(fused_imex, args, coupling="local")
    monkeypatch.setattr(kernels, "CHUNK_CELLS", 2 * 2 * 4 * 5)  # two samples per chunk
    chunked = run_with_grads(fused_imex, args, coupling="local")
    for a, b in zip(whole[:2], chunked[:2], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert_close_all(chunked[2], whole[2], rtol=1e-13, atol=1e-15)


def test_map_inputs_equals_linear():
    """`map_inputs` (output in reused buffers) has the values and gradients of F.linear, and
    a second call never overwrites an output still in use."""
    inputs = torch.randn(700, 30, 2, requires_grad=True)  # output over the 1 MiB threshold
    weight = torch.randn(16, 2, requires_grad=True)
    first = map_inputs(inputs, weight)
    kept = first.detach().clone()
    second = map_inputs(2 * inputs, weight)
    torch.testing.assert_close(first, kept, rtol=0, atol=0)
    torch.testing.assert_close(second, 2 * kept, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(first, torch.nn.functional.linear(inputs, weight))
    small = (torch.randn(5, 3, 2, requires_grad=True), torch.randn(4, 2, requires_grad=True))
    assert torch.autograd.gradcheck(map_inputs, small)
