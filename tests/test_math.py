"""Every operation of minicnn/functional/math.py and F.linear: forward against plain NumPy, backward
with minicnn.gradcheck (float64, random upstream gradient, every input checked).

Each test takes the ``xp`` fixture, so the same checks run on CuPy when a GPU is present.
"""
import numpy as np
import pytest

from minicnn import Tensor, backend
from minicnn.functional import math as M
from minicnn.functional.linear import linear
from minicnn.gradcheck import gradcheck


def leaf(xp, array):
    """A float64 leaf tensor on xp's device that requires grad."""
    return Tensor(xp.asarray(np.asarray(array, dtype=np.float64)), requires_grad=True)


def as_np(t):
    return backend.as_numpy(t.data if isinstance(t, Tensor) else t)


def distinct(rng, shape, low=-2.0, high=2.0):
    """Shuffled, evenly spaced values: no ties, no two within ~1e-2 (Chainer's shuffled_linspace)."""
    n = int(np.prod(shape))
    return rng.permutation(np.linspace(low, high, n)).reshape(shape)


# ---------------------------------------------------------------- elementwise, broadcasting -----

BINARY = {
    "add": (M.add, np.add),
    "sub": (M.sub, np.subtract),
    "mul": (M.mul, np.multiply),
    "div": (M.div, np.divide),
    "pow": (M.pow, np.power),
}

BROADCAST_SHAPES = [((3, 4), (3, 4)), ((3, 1, 5), (4, 1)), ((2, 3), (3,)), ((4,), (2, 1)), ((2, 3), ()),
                    ((), (2, 3)), ((1, 3, 1), (2, 1, 4))]


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shape_a, shape_b", BROADCAST_SHAPES)
def test_binary_op_matches_numpy_and_gradients_sum_back_to_each_input_shape(xp, rng, name, shape_a, shape_b):
    op, reference = BINARY[name]
    # Positive operands keep div away from 0 and give pow a real log(a) for the exponent's gradient.
    a = rng.uniform(0.5, 2.0, shape_a)
    b = rng.uniform(0.5, 2.0, shape_b)
    y = op(leaf(xp, a), leaf(xp, b))
    np.testing.assert_allclose(as_np(y), reference(a, b), rtol=1e-12)
    gradcheck(op, [leaf(xp, a), leaf(xp, b)])


def test_broadcast_gradient_is_the_sum_over_the_broadcast_axes(xp):
    a, b = leaf(xp, np.ones((3, 1, 5))), leaf(xp, np.ones((4, 1)))
    (a + b).backward(xp.ones((3, 4, 5)))
    assert a.grad.shape == (3, 1, 5) and b.grad.shape == (4, 1)
    np.testing.assert_array_equal(as_np(a.grad), np.full((3, 1, 5), 4.0))     # summed over the 4
    np.testing.assert_array_equal(as_np(b.grad), np.full((4, 1), 15.0))       # summed over 3 and 5


def test_same_tensor_on_both_sides_gets_both_contributions(xp, rng):
    x = rng.uniform(0.5, 2.0, (3, 2))
    t = leaf(xp, x)
    (t * t).backward(xp.ones((3, 2)))
    np.testing.assert_allclose(as_np(t.grad), 2 * x)
    gradcheck(lambda t: t * t - t / t, [leaf(xp, x)])


def test_pow_with_tensor_exponent_checks_base_and_exponent(xp, rng):
    base, exponent = rng.uniform(0.5, 2.0, (3, 4)), rng.uniform(-2.0, 2.0, (4,))
    result = gradcheck(M.pow, [leaf(xp, base), leaf(xp, exponent)])
    assert result.checked == ["input 0", "input 1"]


def test_pow_with_integer_scalar_exponent_handles_negative_bases(xp, rng):
    x = distinct(rng, (3, 4))
    np.testing.assert_allclose(as_np(leaf(xp, x) ** 3), x ** 3)
    gradcheck(lambda t: t ** 3, [leaf(xp, x)])


def test_reflected_operators_put_the_scalar_on_the_left(xp, rng):
    x = rng.uniform(0.5, 2.0, (2, 3))
    t = leaf(xp, x)
    np.testing.assert_allclose(as_np(2.0 - t), 2.0 - x)
    np.testing.assert_allclose(as_np(2.0 / t), 2.0 / x)
    np.testing.assert_allclose(as_np(2.0 ** t), 2.0 ** x)
    gradcheck(lambda t: 2.0 ** t + 3.0 / t - 1.0 * t + (5.0 - t), [leaf(xp, x)])


UNARY = {
    "neg": (M.neg, np.negative, (-2.0, 2.0)),
    "exp": (M.exp, np.exp, (-2.0, 2.0)),
    "log": (M.log, np.log, (0.5, 3.0)),
    "sqrt": (M.sqrt, np.sqrt, (0.5, 3.0)),
    "abs": (M.abs, np.abs, (-2.0, 2.0)),     # distinct() keeps values ~1e-2 away from the kink at 0
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_op_matches_numpy_and_passes_gradcheck(xp, rng, name):
    op, reference, (low, high) = UNARY[name]
    x = distinct(rng, (3, 5), low, high)
    np.testing.assert_allclose(as_np(op(leaf(xp, x))), reference(x), rtol=1e-12)
    gradcheck(op, [leaf(xp, x)])


@pytest.mark.parametrize("lo, hi", [(-0.5, 0.5), (None, 0.3), (-0.3, None)])
def test_clip_passes_gradient_only_inside_the_bounds(xp, rng, lo, hi):
    x = distinct(rng, (4, 5), -1.0, 1.0) + 0.013     # no element sits on a bound
    y = M.clip(leaf(xp, x), lo, hi)
    np.testing.assert_allclose(as_np(y), np.clip(x, lo, hi))
    t = leaf(xp, x)
    M.clip(t, lo, hi).backward(xp.ones(x.shape))
    inside = (x >= (-np.inf if lo is None else lo)) & (x <= (np.inf if hi is None else hi))
    np.testing.assert_array_equal(as_np(t.grad), inside.astype(float))
    gradcheck(lambda t: M.clip(t, lo, hi), [leaf(xp, x)])


# ---------------------------------------------------------------- matmul ------------------------

MATMUL_SHAPES = [((4,), (4,)), ((4,), (4, 3)), ((2, 4), (4,)), ((2, 4), (4, 3)), ((5, 2, 4), (4, 3)),
                 ((2, 4), (5, 4, 3)), ((5, 2, 4), (5, 4, 3)), ((4,), (5, 4, 3)), ((5, 2, 4), (4,)),
                 ((2, 1, 3, 4), (5, 4, 2))]


@pytest.mark.parametrize("shape_a, shape_b", MATMUL_SHAPES)
def test_matmul_matches_numpy_for_1d_and_batched_operands(xp, rng, shape_a, shape_b):
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    y = M.matmul(leaf(xp, a), leaf(xp, b))
    np.testing.assert_allclose(as_np(y), np.matmul(a, b), rtol=1e-12, atol=1e-12)
    gradcheck(M.matmul, [leaf(xp, a), leaf(xp, b)])


def test_matmul_operator_and_reflected_operator_with_an_array(xp, rng):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(as_np(leaf(xp, a) @ b), a @ b)
    np.testing.assert_allclose(as_np(xp.asarray(a) @ leaf(xp, b)), a @ b)


# ---------------------------------------------------------------- reductions --------------------

AXES = [None, 0, -1, (0, 2), (-1, -3), (1,)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
def test_reduction_matches_numpy_for_axis_tuples_negative_axes_and_keepdims(xp, rng, name, axis, keepdims):
    x = distinct(rng, (2, 3, 4))        # distinct values: max/min have a unique arg
    y = getattr(M, name)(leaf(xp, x), axis=axis, keepdims=keepdims)
    expected = getattr(np, name)(x, axis=axis, keepdims=keepdims)
    assert y.shape == expected.shape
    np.testing.assert_allclose(as_np(y), expected, rtol=1e-12)
    gradcheck(lambda t: getattr(M, name)(t, axis=axis, keepdims=keepdims), [leaf(xp, x)])


@pytest.mark.parametrize("correction", [0, 1])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES)
def test_var_matches_numpy_ddof_equal_to_correction(xp, rng, axis, keepdims, correction):
    x = rng.standard_normal((2, 3, 4))
    y = M.var(leaf(xp, x), axis=axis, keepdims=keepdims, correction=correction)
    np.testing.assert_allclose(as_np(y), np.var(x, axis=axis, keepdims=keepdims, ddof=correction), rtol=1e-12)
    gradcheck(lambda t: M.var(t, axis=axis, keepdims=keepdims, correction=correction), [leaf(xp, x)])


def test_var_is_unbiased_by_default_and_accepts_unbiased_false(xp, rng):
    x = rng.standard_normal((5, 3))
    np.testing.assert_allclose(as_np(M.var(leaf(xp, x), axis=0)), np.var(x, axis=0, ddof=1))
    np.testing.assert_allclose(as_np(M.var(leaf(xp, x), axis=0, unbiased=False)), np.var(x, axis=0))


def test_reductions_accept_pytorch_dim_and_keepdim(xp, rng):
    x = rng.standard_normal((2, 3, 4))
    t = leaf(xp, x)
    np.testing.assert_allclose(as_np(t.sum(dim=1, keepdim=True)), x.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(as_np(t.mean(dim=[0, 2])), x.mean(axis=(0, 2)))
    with pytest.raises(TypeError, match="unexpected"):
        M.sum(t, axes=1)


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_and_min_share_the_gradient_equally_among_ties(xp, name):
    x = np.array([[1.0, 3.0, 3.0, -1.0],
                  [2.0, 2.0, 2.0, 2.0]])
    x = x if name == "max" else -x
    t = leaf(xp, x)
    getattr(M, name)(t, axis=1).backward(xp.asarray([6.0, 4.0]))
    np.testing.assert_allclose(as_np(t.grad), [[0, 3, 3, 0], [1, 1, 1, 1]])

    t = leaf(xp, x)
    getattr(t, name)().backward()            # over all axes: the two 3s tie
    np.testing.assert_allclose(as_np(t.grad), [[0, 0.5, 0.5, 0], [0, 0, 0, 0]])


def test_argmax_gives_an_integer_tensor_without_gradient(xp, rng):
    x = distinct(rng, (3, 4))
    t = leaf(xp, x)
    i = t.argmax(axis=1)
    assert i.dtype.kind == "i" and not i.requires_grad and i.creator is None
    np.testing.assert_array_equal(as_np(i), x.argmax(axis=1))
    assert int(t.argmax().item()) == int(x.argmax())


# ---------------------------------------------------------------- shape operations --------------

def test_reshape_with_minus_one_and_its_gradient(xp, rng):
    x = rng.standard_normal((2, 3, 4))
    y = leaf(xp, x).reshape(6, -1)
    assert y.shape == (6, 4)
    np.testing.assert_array_equal(as_np(y), x.reshape(6, 4))
    W = xp.asarray(rng.standard_normal((6, 2)))
    gradcheck(lambda t: M.reshape(t, (4, -1)) @ W, [leaf(xp, x)])


def test_reshape_to_a_wrong_size_names_both_shapes(xp):
    with pytest.raises(ValueError, match=r"reshape.*\(2, 3\).*\(4, 2\)"):
        leaf(xp, np.zeros((2, 3))).reshape(4, 2)


@pytest.mark.parametrize("axes", [None, (1, 0, 2), (2, 0, 1), (-1, 0, 1), (0, -1, -2)])
def test_transpose_matches_numpy_including_negative_axes(xp, rng, axes):
    x = rng.standard_normal((2, 3, 4))
    y = M.transpose(leaf(xp, x), axes)
    np.testing.assert_array_equal(as_np(y), np.transpose(x, axes))
    gradcheck(lambda t: M.transpose(t, axes), [leaf(xp, x)])


def test_transpose_rejects_axes_that_are_not_a_permutation(xp):
    with pytest.raises(ValueError, match="permutation"):
        M.transpose(leaf(xp, np.zeros((2, 3))), (0, 0))


def test_permute_and_T_are_transposes(xp, rng):
    x = rng.standard_normal((2, 3, 4))
    np.testing.assert_array_equal(as_np(leaf(xp, x).permute(2, 0, 1)), x.transpose(2, 0, 1))
    np.testing.assert_array_equal(as_np(leaf(xp, x[0]).T), x[0].T)


@pytest.mark.parametrize("start, end, shape", [(0, -1, (24,)), (1, -1, (2, 12)), (0, 1, (6, 4)),
                                               (1, 1, (2, 3, 4)), (-2, -1, (2, 12))])
def test_flatten_merges_start_dim_through_end_dim(xp, rng, start, end, shape):
    x = rng.standard_normal((2, 3, 4))
    y = leaf(xp, x).flatten(start, end)
    assert y.shape == shape
    np.testing.assert_array_equal(as_np(y), x.reshape(shape))
    gradcheck(lambda t: M.flatten(t, start, end), [leaf(xp, x)])


def test_broadcast_to_sums_its_gradient_back(xp, rng):
    x = rng.standard_normal((3, 1))
    np.testing.assert_array_equal(as_np(M.broadcast_to(leaf(xp, x), (2, 3, 4))), np.broadcast_to(x, (2, 3, 4)))
    gradcheck(lambda t: M.broadcast_to(t, (2, 3, 4)), [leaf(xp, x)])
    with pytest.raises(ValueError, match=r"broadcast_to.*\(3, 1\).*\(2, 4\)"):
        M.broadcast_to(leaf(xp, x), (2, 4))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cat_concatenates_and_splits_the_gradient(xp, rng, axis):
    shapes = [[(1, 3, 4), (2, 3, 4), (3, 3, 4)], [(2, 1, 4), (2, 2, 4), (2, 3, 4)],
              [(2, 3, 1), (2, 3, 2), (2, 3, 3)]][[0, 1, -1].index(axis)]
    xs = [rng.standard_normal(s) for s in shapes]
    y = M.cat([leaf(xp, x) for x in xs], dim=axis)
    np.testing.assert_array_equal(as_np(y), np.concatenate(xs, axis=axis))
    gradcheck(lambda *ts: M.cat(ts, dim=axis), [leaf(xp, x) for x in xs])


def test_cat_with_mismatched_shapes_names_them(xp):
    with pytest.raises(ValueError, match=r"cat.*\(2, 3\).*\(2, 4\)"):
        M.cat([leaf(xp, np.zeros((2, 3))), leaf(xp, np.zeros((2, 4)))], dim=0)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack_adds_an_axis_and_splits_the_gradient(xp, rng, axis):
    xs = [rng.standard_normal((2, 3)) for _ in range(3)]
    y = M.stack([leaf(xp, x) for x in xs], dim=axis)
    np.testing.assert_array_equal(as_np(y), np.stack(xs, axis=axis))
    gradcheck(lambda *ts: M.stack(ts, dim=axis), [leaf(xp, x) for x in xs])


def test_stack_rejects_unequal_shapes(xp):
    with pytest.raises(ValueError, match="stack"):
        M.stack([leaf(xp, np.zeros((2, 3))), leaf(xp, np.zeros((3, 2)))])


def test_pad_widths_start_from_the_last_axis_like_pytorch(xp, rng):
    x = rng.standard_normal((2, 3, 4))
    y = M.pad(leaf(xp, x), (1, 2, 3, 0))            # W: 1 before, 2 after;  H: 3 before, 0 after
    assert y.shape == (2, 6, 7)
    np.testing.assert_array_equal(as_np(y), np.pad(x, ((0, 0), (3, 0), (1, 2))))
    gradcheck(lambda t: M.pad(t, (1, 2, 3, 0)), [leaf(xp, x)])


def test_pad_with_a_value_and_all_axes(xp, rng):
    x = rng.standard_normal((2, 3))
    y = M.pad(leaf(xp, x), (0, 1, 2, 1), value=-5.0)
    np.testing.assert_array_equal(as_np(y), np.pad(x, ((2, 1), (0, 1)), constant_values=-5.0))
    gradcheck(lambda t: M.pad(t, (0, 1, 2, 1), value=-5.0), [leaf(xp, x)])


@pytest.mark.parametrize("widths", [(1,), (1, 1, 1, 1, 1, 1), (-1, 1)])
def test_pad_rejects_odd_too_many_or_negative_widths(xp, widths):
    with pytest.raises(ValueError, match="pad"):
        M.pad(leaf(xp, np.zeros((2, 3))), widths)


BASIC_KEYS = [1, -1, slice(1, None), (slice(None), 2), (Ellipsis, slice(None, None, -2)),
              (0, slice(1, 3), None), (slice(None, None, 2), None, Ellipsis)]


@pytest.mark.parametrize("key", BASIC_KEYS, ids=repr)
def test_getitem_with_basic_slices_matches_numpy(xp, rng, key):
    x = rng.standard_normal((3, 4, 5))
    np.testing.assert_array_equal(as_np(leaf(xp, x)[key]), x[key])
    gradcheck(lambda t: t[key], [leaf(xp, x)])


ADVANCED_KEYS = [[0, 2, 0, 0], ([1, 1, 2], [0, 3, 0]), (slice(None), slice(None), [4, 4, -1]), (Ellipsis, [0, 0])]


@pytest.mark.parametrize("key", ADVANCED_KEYS, ids=repr)
def test_getitem_with_repeated_integer_indices_sums_the_repeats(xp, rng, key):
    x = rng.standard_normal((3, 4, 5))
    dev_key = tuple(xp.asarray(k) if isinstance(k, list) else k for k in key) if isinstance(key, tuple) \
        else xp.asarray(key)
    np.testing.assert_array_equal(as_np(leaf(xp, x)[dev_key]), x[key])
    gradcheck(lambda t: t[dev_key], [leaf(xp, x)])


def test_getitem_repeats_count_in_the_gradient(xp):
    t = leaf(xp, np.zeros(4))
    t[xp.asarray([2, 0, 2, 2])].backward(xp.asarray([1.0, 10.0, 100.0, 1000.0]))
    np.testing.assert_array_equal(as_np(t.grad), [10.0, 0.0, 1101.0, 0.0])


def test_getitem_with_a_boolean_mask_and_a_comparison_tensor(xp, rng):
    x = rng.standard_normal((4, 5))
    mask = x > 0.1
    np.testing.assert_array_equal(as_np(leaf(xp, x)[xp.asarray(mask)]), x[mask])
    gradcheck(lambda t: t[xp.asarray(mask)], [leaf(xp, x)])
    t = leaf(xp, x)
    t[t > 0.1].sum().backward()
    np.testing.assert_array_equal(as_np(t.grad), mask.astype(float))


def test_astype_casts_forward_and_casts_the_gradient_back(xp, rng):
    x = rng.standard_normal((2, 3))
    t = leaf(xp, x)
    y = M.astype(t, np.float32)
    assert y.dtype == np.float32 and y.requires_grad
    g = rng.standard_normal((2, 3)).astype(np.float32)
    y.backward(xp.asarray(g))
    assert t.grad.dtype == np.float64
    np.testing.assert_array_equal(as_np(t.grad), g.astype(np.float64))


def test_astype_passes_gradcheck_through_a_wider_float():
    # float64 -> longdouble -> (gradient) float64 loses nothing, so the finite differences stay exact.
    # NumPy only: CuPy has no long double.
    x = np.random.default_rng(1).standard_normal((2, 3))
    gradcheck(lambda t: M.astype(t, np.longdouble) * 3.0, [Tensor(x, requires_grad=True)])


# ---------------------------------------------------------------- linear -----------------------

@pytest.mark.parametrize("x_shape", [(5, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_is_x_times_W_transposed_plus_b(xp, rng, x_shape, with_bias):
    x, W, b = rng.standard_normal(x_shape), rng.standard_normal((3, 4)), rng.standard_normal(3)
    args = [leaf(xp, x), leaf(xp, W)] + ([leaf(xp, b)] if with_bias else [])
    np.testing.assert_allclose(as_np(linear(*args)), x @ W.T + (b if with_bias else 0), rtol=1e-12)
    result = gradcheck(linear, [leaf(xp, a) for a in ([x, W, b] if with_bias else [x, W])])
    assert len(result.checked) == (3 if with_bias else 2)


def test_linear_with_a_constant_input_checks_only_the_parameters(xp, rng):
    x = Tensor(xp.asarray(rng.standard_normal((5, 4))))           # data: no gradient wanted
    W, b = leaf(xp, rng.standard_normal((3, 4))), leaf(xp, rng.standard_normal(3))
    result = gradcheck(lambda W, b: linear(x, W, b), [W, b])
    assert result.checked == ["input 0", "input 1"]


def test_linear_errors_name_the_shapes(xp):
    x, W = leaf(xp, np.zeros((5, 4))), leaf(xp, np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"linear.*\(5, 4\).*\(3, 2\)"):
        linear(x, W)
    with pytest.raises(ValueError, match=r"linear: bias.*\(2,\).*\(3,\)"):
        linear(x, leaf(xp, np.zeros((3, 4))), leaf(xp, np.zeros(2)))


# ---------------------------------------------------------------- bad inputs, dtypes -----------

@pytest.mark.parametrize("op, name", [(M.add, "add"), (M.sub, "sub"), (M.mul, "mul"), (M.div, "div")])
def test_incompatible_shapes_name_the_operation_and_both_shapes(xp, op, name):
    with pytest.raises(ValueError, match=rf"{name}: shapes \(2, 3\) and \(4,\)"):
        op(leaf(xp, np.zeros((2, 3))), leaf(xp, np.zeros(4)))


def test_matmul_with_mismatched_inner_dimensions_names_the_shapes(xp):
    with pytest.raises(ValueError, match=r"matmul.*\(2, 3\) @ \(4, 5\)"):
        leaf(xp, np.zeros((2, 3))) @ leaf(xp, np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"matmul.*\(\).*\(3,\)"):
        M.matmul(leaf(xp, np.zeros(())), leaf(xp, np.zeros(3)))


FLOAT32_OPS = {
    "add": lambda t: t + t[0], "mul": lambda t: t * 2.0, "div": lambda t: 1.0 / t, "pow": lambda t: t ** t,
    "exp": M.exp, "log": M.log, "sqrt": M.sqrt, "abs": M.abs, "clip": lambda t: M.clip(t, 0.7, 1.2),
    "matmul": lambda t: t @ t.T, "sum": lambda t: t.sum(axis=0), "mean": lambda t: t.mean(),
    "var": lambda t: t.var(axis=1), "max": lambda t: t.max(axis=1), "getitem": lambda t: t[xp_index(t)],
    "mask": lambda t: t[t > 1.0], "pad": lambda t: M.pad(t, (1, 1)), "cat": lambda t: M.cat([t, t], 1),
    "stack": lambda t: M.stack([t, t]), "transpose": lambda t: t.T, "reshape": lambda t: t.reshape(-1),
    "linear": lambda t: linear(t, t, t[0]),
}


def xp_index(t):
    return backend.get_array_module(t).asarray([0, 0, 2])


@pytest.mark.parametrize("name", sorted(FLOAT32_OPS))
def test_float32_stays_float32_forward_and_backward(xp, rng, name):
    t = Tensor(xp.asarray(rng.uniform(0.5, 1.5, (3, 3)).astype(np.float32)), requires_grad=True)
    y = FLOAT32_OPS[name](t)
    assert y.dtype == np.float32
    y.backward(xp.ones(y.shape, np.float32))
    assert t.grad.dtype == np.float32
