"""Specification of mixed precision (minicnn.training.amp): float16 compute on float32 masters, and
dynamic loss scaling that skips a step on overflow."""
import numpy as np
import pytest

import minicnn
import minicnn.functional as F
from minicnn import nn, optim
from minicnn.training import GradScaler, Recipe, Trainer, cast_parameters


def parameter(values):
    return nn.Parameter(np.array(values, dtype=np.float32))


def scaled_step(scaler, optimizer, p, grad):
    """One iteration as the trainer runs it, with ``grad`` standing for the float16 gradient of S·loss."""
    optimizer.zero_grad()
    p.grad = minicnn.Tensor(np.array(grad, dtype=np.float16))
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    skipped = scaler.found_inf
    scaler.update()
    return skipped


# ---------------------------------------------------------------- GradScaler -------------------

def test_scale_multiplies_the_loss_and_unscale_divides_the_gradients_in_float32():
    scaler = GradScaler(init_scale=1024.0)
    p = parameter([1.0, 2.0])
    optimizer = optim.SGD([p], lr=0.5)
    assert scaler.scale(minicnn.Tensor(np.float32(3.0))).item() == 3072.0
    p.grad = minicnn.Tensor(np.array([512.0, -2048.0], np.float16))
    scaler.unscale_(optimizer)
    assert p.grad.dtype == np.float32
    np.testing.assert_array_equal(p.grad.data, [0.5, -2.0])
    scaler.step(optimizer)
    np.testing.assert_array_equal(p.data, [0.75, 3.0])


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_an_inf_or_nan_gradient_skips_the_step_leaves_weights_and_state_unchanged_and_halves_the_scale(bad):
    scaler = GradScaler(init_scale=2.0 ** 16, growth_interval=3)
    p = parameter([1.0, 2.0])
    optimizer = optim.SGD([p], lr=0.1, momentum=0.9)
    assert scaled_step(scaler, optimizer, p, [bad, 1.0]) is True
    np.testing.assert_array_equal(p.data, [1.0, 2.0])
    assert p.data.dtype == np.float32
    assert not optimizer.state[p]                          # no momentum buffer was made from the bad step
    assert scaler.get_scale() == 2.0 ** 15
    assert scaler.skipped_steps == 1


def test_the_scale_grows_after_growth_interval_clean_steps_and_an_overflow_resets_the_count():
    scaler = GradScaler(init_scale=8.0, growth_interval=3)
    p = parameter([0.0])
    optimizer = optim.SGD([p], lr=1.0)
    scales = []
    for grad in ([8.0], [8.0], [8.0], [8.0], [np.inf], [8.0], [8.0], [8.0]):
        scaled_step(scaler, optimizer, p, grad)
        scales.append(scaler.get_scale())
    assert scales == [8.0, 8.0, 16.0, 16.0, 8.0, 8.0, 8.0, 16.0]
    # Clean steps moved p by lr·(grad / S) each time: 1 + 1 + 1 + 0.5 + (skipped) + 1 + 1 + 1
    assert float(p.data[0]) == -6.5


def test_a_disabled_scaler_passes_everything_through():
    scaler = GradScaler(enabled=False)
    p = parameter([1.0])
    optimizer = optim.SGD([p], lr=1.0)
    loss = minicnn.Tensor(np.float32(2.0))
    assert scaler.scale(loss) is loss and scaler.get_scale() == 1.0
    p.grad = minicnn.Tensor(np.array([0.5], np.float32))
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    scaler.update()
    np.testing.assert_array_equal(p.data, [0.5])


def test_scaler_state_dict_round_trips_through_save_and_load(tmp_path):
    scaler = GradScaler(init_scale=256.0, growth_interval=5)
    p = parameter([0.0])
    optimizer = optim.SGD([p], lr=1.0)
    scaled_step(scaler, optimizer, p, [1.0])
    scaled_step(scaler, optimizer, p, [np.inf])
    minicnn.save(scaler.state_dict(), tmp_path / "scaler.npz")
    restored = GradScaler()
    restored.load_state_dict(minicnn.load(tmp_path / "scaler.npz"))
    assert restored.state_dict() == scaler.state_dict()
    assert restored.get_scale() == 128.0 and restored.skipped_steps == 1


def test_unscale_twice_in_one_iteration_is_an_error():
    scaler = GradScaler()
    p = parameter([0.0])
    p.grad = minicnn.Tensor(np.array([1.0], np.float16))
    optimizer = optim.SGD([p], lr=1.0)
    scaler.unscale_(optimizer)
    with pytest.raises(RuntimeError, match="already"):
        scaler.unscale_(optimizer)


# ---------------------------------------------------------------- float16 compute --------------

def small_net():
    minicnn.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 5 * 5, 3))


def test_cast_parameters_computes_in_float16_and_restores_the_float32_masters():
    model = small_net()
    params = list(model.parameters())
    masters = [p.data for p in params]
    x = np.random.default_rng(0).standard_normal((4, 1, 5, 5)).astype(np.float16)
    with cast_parameters(model):
        assert all(p.dtype == np.float16 for p in model.parameters())
        assert model[1].running_mean.dtype == np.float32          # BN statistics stay float32
        out = model(minicnn.Tensor(x))
        assert out.dtype == np.float16
        F.cross_entropy(F.astype(out, np.float32), np.array([0, 1, 2, 0])).backward()
    assert list(model.parameters()) == params                      # the same Parameter objects
    assert all(p.data is m for p, m in zip(params, masters))       # the masters themselves, untouched
    assert all(p.grad.dtype == np.float16 for p in params)


def test_float16_gradients_match_float32_ones_to_half_precision():
    x = np.random.default_rng(1).standard_normal((6, 1, 5, 5)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    reference = small_net()
    F.cross_entropy(reference(minicnn.Tensor(x)), y).backward()
    model = small_net()
    scaler = GradScaler(init_scale=1024.0)
    with cast_parameters(model):
        loss = F.cross_entropy(F.astype(model(minicnn.Tensor(x.astype(np.float16))), np.float32), y)
        scaler.scale(loss).backward()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    scaler.unscale_(optimizer)
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(p.grad.data, q.grad.data, rtol=0.05, atol=2e-3)


def test_trainer_with_amp_keeps_float32_weights_skips_overflowing_steps_and_learns():
    model = small_net()
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 48)
    images = (rng.standard_normal((48, 1, 5, 5)) + labels[:, None, None, None]).astype(np.float32)
    batches = [(images[i:i + 12], labels[i:i + 12]) for i in range(0, 48, 12)]
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    # 2^40 overflows float16 (max 65504) at once: the first steps are skipped while the scale halves.
    trainer = Trainer(model, optimizer, batches, batches, recipe=Recipe(amp=True, loss_scale=2.0 ** 40),
                      progress=False, log=lambda *a: None)
    before = [p.data.copy() for p in model.parameters()]
    trainer.train_step(*batches[0])
    assert trainer.scaler.skipped_steps == 1 and trainer.scaler.get_scale() == 2.0 ** 39
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, b)
    history = trainer.fit(8)
    assert all(p.dtype == np.float32 for p in model.parameters())
    # The scale comes down to where float16 gradients stop overflowing: 2^17 for this net (2^13 while
    # batch norm's backward still formed m·gy, which overflowed float16 on its own).
    assert trainer.scaler.get_scale() <= 2.0 ** 17
    assert history.records[-1]["train_loss"] < history.records[0]["train_loss"]
