"""The autograd engine: the Tensor API, the backward pass and its gradient rules, no_grad, and errors."""
import numpy as np
import pytest

import minicnn
from minicnn import Function, Tensor, as_tensor, enable_grad, is_grad_enabled, no_grad, tensor
from minicnn.backend import as_numpy


def leaf(xp, array, dtype=np.float64):
    return Tensor(xp.asarray(np.asarray(array, dtype=dtype)), requires_grad=True)


# ---------------------------------------------------------------- the Tensor API ---------------

def test_tensor_exposes_data_shape_dtype_and_fills_grad_on_backward(xp):
    x = leaf(xp, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert isinstance(x.data, xp.ndarray)
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and len(x) == 2
    assert x.dtype == np.float64
    assert x.grad is None and x.is_leaf and x.creator is None
    (x * x).sum().backward()
    assert isinstance(x.grad, Tensor) and x.grad.shape == (2, 3)
    np.testing.assert_array_equal(as_numpy(x.grad.data), 2 * as_numpy(x.data))


def test_detach_shares_the_array_but_leaves_the_graph(xp):
    x = leaf(xp, [1.0, 2.0])
    y = x * 3.0
    d = y.detach()
    assert d.data is y.data
    assert d.is_leaf and not d.requires_grad


def test_item_and_numpy_and_tolist(xp):
    t = Tensor(xp.asarray([[2.5]]))
    assert t.item() == 2.5 and isinstance(t.item(), float)
    assert isinstance(t.numpy(), np.ndarray)
    assert t.tolist() == [[2.5]]
    with pytest.raises(ValueError, match=r"one-element.*\(2,\)"):
        Tensor(xp.zeros(2)).item()


def test_python_float_lists_get_the_default_float32():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(1.5).dtype == np.float32
    assert Tensor([1, 2]).dtype.kind == "i"                       # integers stay integers
    assert Tensor(np.zeros(2, np.float64)).dtype == np.float64   # arrays keep their dtype
    assert Tensor([1.0], dtype=np.float64).dtype == np.float64


def test_default_dtype_context_changes_and_restores_the_default():
    assert minicnn.get_default_dtype() == np.float32
    with minicnn.default_dtype(np.float64):
        assert Tensor([1.0, 2.0]).dtype == np.float64
        assert minicnn.get_default_dtype() == np.float64
    assert Tensor([1.0, 2.0]).dtype == np.float32
    with pytest.raises(KeyError):
        with minicnn.default_dtype(np.float64):
            raise KeyError("restored even on error")
    assert minicnn.get_default_dtype() == np.float32


def test_set_default_dtype_changes_new_tensors_and_refuses_integers():
    try:
        minicnn.set_default_dtype(np.float64)
        assert Tensor([1.0]).dtype == np.float64
    finally:
        minicnn.set_default_dtype(np.float32)
    with pytest.raises(TypeError, match="floating"):
        minicnn.set_default_dtype(np.int32)


def test_tensor_copies_and_as_tensor_does_not(xp):
    a = xp.zeros(3)
    assert tensor(a).data is not a
    t = Tensor(a)
    assert as_tensor(t) is t
    assert as_tensor(t, np.float32).dtype == np.float32


def test_tensors_hash_by_identity_so_they_can_be_dict_keys(xp):
    a, b = Tensor(xp.zeros(2)), Tensor(xp.zeros(2))
    assert len({a: 1, b: 2}) == 2


def test_repr_shows_values_dtype_and_requires_grad():
    text = repr(Tensor(np.array([1.0, 2.0]), requires_grad=True))
    assert "Tensor(" in text and "1." in text and "float64" in text and "requires_grad=True" in text


def test_truth_value_of_a_multi_element_tensor_is_an_error(xp):
    assert bool(Tensor(xp.asarray([3.0])))
    with pytest.raises(ValueError, match=r"shape \(2,\) is ambiguous"):
        bool(Tensor(xp.zeros(2)))


# ---------------------------------------------------------------- scalars are weak --------------

@pytest.mark.parametrize("scalar", [2.0, 2, np.float64(2.0), np.int64(2), np.float32(2.0), True],
                         ids=["float", "int", "np.float64", "np.int64", "np.float32", "bool"])
def test_scalars_keep_a_float32_tensor_float32_on_either_side(xp, scalar):
    t = Tensor(xp.asarray([1.0, 4.0], dtype=np.float32))
    for y in (t * scalar, scalar * t, t + scalar, scalar + t, t - scalar, scalar - t, t / scalar,
              scalar / t, t ** scalar):
        assert isinstance(y, Tensor)
        assert y.dtype == np.float32


def test_scalar_arithmetic_gives_the_right_values(xp):
    t = Tensor(xp.asarray([1.0, 4.0], dtype=np.float32))
    np.testing.assert_allclose(as_numpy((np.float64(2) * t).data), [2.0, 8.0])
    np.testing.assert_allclose(as_numpy((1.0 - t).data), [0.0, -3.0])
    np.testing.assert_allclose(as_numpy((8.0 / t).data), [8.0, 2.0])
    np.testing.assert_allclose(as_numpy((2 ** t).data), [2.0, 16.0])


def test_an_array_on_the_left_uses_the_tensor_reflected_operators(xp):
    t = leaf(xp, [1.0, 2.0])
    a = xp.asarray([10.0, 20.0])
    for y, expected in ((a * t, [10.0, 40.0]), (a + t, [11.0, 22.0]), (a - t, [9.0, 18.0]),
                        (a / t, [10.0, 10.0])):
        assert isinstance(y, Tensor)
        np.testing.assert_allclose(as_numpy(y.data), expected)
    (a * t).sum().backward()
    np.testing.assert_allclose(as_numpy(t.grad.data), [10.0, 20.0])


@pytest.mark.parametrize("op", ["__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"])
def test_comparisons_give_bool_tensors_without_grad(xp, op):
    x = leaf(xp, [1.0, 2.0, 3.0])
    for other in (2.0, xp.asarray([3.0, 2.0, 1.0]), Tensor(xp.asarray([3.0, 2.0, 1.0]))):
        y = getattr(x, op)(other)
        assert isinstance(y, Tensor) and y.dtype == np.bool_
        assert not y.requires_grad and y.creator is None
        raw = other.data if isinstance(other, Tensor) else other
        np.testing.assert_array_equal(as_numpy(y.data), as_numpy(getattr(x.data, op)(raw)))


# ---------------------------------------------------------------- the backward pass ------------

def test_a_chain_of_ten_thousand_operations_backpropagates_without_recursion(xp):
    x = leaf(xp, [1.0, 2.0])
    y = x
    for i in range(10_000):
        y = y * 1.0001 if i % 2 else y + 0.5       # 5,000 multiplications by 1.0001
    y.sum().backward()
    np.testing.assert_allclose(as_numpy(x.grad.data), [1.0001 ** 5000] * 2, rtol=1e-10)


def test_diamond_graph_sums_the_gradients_of_both_branches(xp):
    x = leaf(xp, [1.0, 2.0, 3.0])
    left, right = x * 2.0, x ** 2           # x feeds two branches
    (left * right).sum().backward()          # d/dx (2x · x²) = 6x²
    np.testing.assert_allclose(as_numpy(x.grad.data), 6 * np.array([1.0, 4.0, 9.0]))


def test_diamond_with_a_shared_intermediate_is_visited_once(xp):
    x = leaf(xp, [1.0, 2.0])
    h = x.exp()                              # h has two consumers
    (h * 3.0 + h * h).sum().backward()       # d/dx = (3 + 2h)·h
    h_np = np.exp([1.0, 2.0])
    np.testing.assert_allclose(as_numpy(x.grad.data), (3 + 2 * h_np) * h_np)


def test_gradients_accumulate_in_leaves_across_backward_calls(xp):
    x = leaf(xp, [1.0, 2.0])
    (x * 3.0).sum().backward()
    (x * 4.0).sum().backward()
    np.testing.assert_allclose(as_numpy(x.grad.data), [7.0, 7.0])
    x.grad = None
    (x * 5.0).sum().backward()
    np.testing.assert_allclose(as_numpy(x.grad.data), [5.0, 5.0])
    x.zero_grad()
    assert x.grad is None


def test_leaf_gradients_are_their_own_writable_arrays(xp):
    a, b = leaf(xp, [1.0, 2.0]), leaf(xp, [3.0, 4.0])
    g = xp.asarray([1.0, 1.0])
    (a + b).backward(g)                      # Add hands the same gy to both inputs
    assert a.grad.data is not g and a.grad.data is not b.grad.data
    w = leaf(xp, [1.0, 2.0])
    w.sum().backward()                       # Sum's gradient is a read-only broadcast view
    w.grad.data[...] = 0                     # what zero_grad(set_to_none=False) and optimizers do
    a.grad.data[...] = 0
    np.testing.assert_array_equal(as_numpy(g), [1.0, 1.0])
    np.testing.assert_array_equal(as_numpy(b.grad.data), [1.0, 1.0])


def test_intermediate_tensors_keep_no_grad_unless_retain_grad(xp):
    x = leaf(xp, [1.0, 2.0])
    h = x * 2.0
    kept = x * 3.0
    kept.retain_grad()
    y = (h * kept).sum()
    y.retain_grad()
    y.backward()
    assert h.grad is None
    np.testing.assert_allclose(as_numpy(kept.grad.data), as_numpy(h.data))
    assert y.grad.item() == 1.0
    np.testing.assert_allclose(as_numpy(x.grad.data), 12 * np.array([1.0, 2.0]))


def test_second_backward_through_a_freed_graph_is_a_clear_error(xp):
    x = leaf(xp, [1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward_that_doubles_the_gradient(xp):
    x = leaf(xp, [1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(as_numpy(x.grad.data), 2 * 2 * np.array([1.0, 2.0]))


def test_backward_with_an_explicit_gradient_on_a_non_scalar(xp):
    x = leaf(xp, [[1.0, 2.0], [3.0, 4.0]])
    (x * x).backward(xp.asarray([[1.0, 0.0], [0.5, 2.0]]))
    np.testing.assert_allclose(as_numpy(x.grad.data), [[2.0, 0.0], [3.0, 16.0]])


def test_backward_on_a_leaf_accumulates_into_itself(xp):
    x = leaf(xp, [1.0, 2.0])
    x.backward(xp.asarray([3.0, 4.0]))
    np.testing.assert_array_equal(as_numpy(x.grad.data), [3.0, 4.0])


def test_only_inputs_that_require_grad_receive_one(xp):
    x, c = leaf(xp, [1.0, 2.0]), Tensor(xp.asarray([3.0, 4.0]))
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(as_numpy(x.grad.data), [3.0, 4.0])


class _SplitHalves(Function):
    """Two outputs: the first and the second half of a vector."""
    def forward(self, x):
        n = x.shape[0] // 2
        return x[:n], x[n:]

    def backward(self, g_first, g_second):
        return minicnn.get_array_module(g_first).concatenate([g_first, g_second])


def test_a_function_with_several_outputs_gets_zeros_for_an_unused_one(xp):
    x = leaf(xp, [1.0, 2.0, 3.0, 4.0])
    first, _ = _SplitHalves()(x)
    (first * 5.0).sum().backward()
    np.testing.assert_array_equal(as_numpy(x.grad.data), [5.0, 5.0, 0.0, 0.0])


def test_a_backward_returning_a_wrong_shape_names_the_function(xp):
    class Broken(Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy[:1]

    x = leaf(xp, [1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"Broken.backward.*\(1,\).*\(2,\)"):
        Broken()(x).sum().backward()


def test_a_backward_returning_too_few_gradients_names_the_function(xp):
    class Broken(Function):
        def forward(self, a, b):
            return a + b

        def backward(self, gy):
            return gy

    with pytest.raises(RuntimeError, match="Broken.backward returned 1 gradients for 2 inputs"):
        Broken()(leaf(xp, [1.0]), leaf(xp, [2.0])).sum().backward()


# ---------------------------------------------------------------- no_grad / enable_grad --------

def test_no_grad_records_nothing(xp):
    x = leaf(xp, [1.0, 2.0])
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 2.0).sum()
    assert is_grad_enabled()
    assert not y.requires_grad and y.creator is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_no_grad_works_as_a_decorator(xp):
    @no_grad()
    def evaluate(x):
        return x * 2.0

    y = evaluate(leaf(xp, [1.0]))
    assert not y.requires_grad and y.creator is None
    assert is_grad_enabled()


def test_enable_grad_inside_no_grad_records_again(xp):
    x = leaf(xp, [1.0, 2.0])
    with no_grad():
        with enable_grad():
            y = (x * 3.0).sum()
        z = x * 3.0
        assert not is_grad_enabled()
    assert y.requires_grad and y.creator is not None and z.creator is None
    y.backward()
    np.testing.assert_array_equal(as_numpy(x.grad.data), [3.0, 3.0])


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert is_grad_enabled()


# ---------------------------------------------------------------- bad input ---------------------

def test_backward_on_a_non_scalar_without_gradient_names_the_shape(xp):
    y = leaf(xp, [[1.0, 2.0]]) * 2.0
    with pytest.raises(RuntimeError, match=r"non-scalar.*\(1, 2\)"):
        y.backward()


def test_backward_with_a_gradient_of_the_wrong_shape_names_both_shapes(xp):
    y = leaf(xp, [[1.0, 2.0]]) * 2.0
    with pytest.raises(ValueError, match=r"gradient has shape \(2,\).*\(1, 2\)"):
        y.backward(xp.ones(2))


def test_requires_grad_on_an_integer_tensor_names_the_dtype(xp):
    with pytest.raises(TypeError, match="floating.*int64"):
        Tensor(xp.asarray([1, 2], dtype=np.int64), requires_grad=True)


def test_backward_on_a_tensor_that_does_not_require_grad_says_so(xp):
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(xp.asarray(1.0)).backward()
