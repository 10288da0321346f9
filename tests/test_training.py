"""Specification of minicnn.training: clipping, mixup, EMA, metrics, the history, the loss the Trainer
builds (label smoothing, aux loss, distillation), stopping on a NaN loss, and resuming bit for bit."""
import json
import math

import numpy as np
import pytest

import minicnn
import minicnn.functional as F
from minicnn import nn, optim
from minicnn.data import DataLoader
from minicnn.data import transforms as T
from minicnn.training import (History, ModelEMA, Recipe, Trainer, TrainingDiverged, accuracy, clip_grad_norm_,
                              load_checkpoint, mixup, one_hot, topk_correct)


def param(values, dtype=np.float64):
    return minicnn.Tensor(np.array(values, dtype=dtype), requires_grad=True)


def with_grad(values, grad):
    p = param(values)
    p.grad = minicnn.Tensor(np.array(grad, dtype=np.float64))
    return p


class CrashAt:
    """A transform that raises ``error`` on its ``call``-th batch: a run killed in the middle of an epoch."""

    def __init__(self, transform, call, error):
        self.transform, self.call, self.error, self.calls = transform, call, error, 0

    def __call__(self, images, rng):
        self.calls += 1
        if self.calls == self.call:
            raise self.error
        return self.transform(images, rng)


def augmentation():
    return T.Compose([T.RandomCrop(6, padding=1), T.RandomHorizontalFlip()])


def tiny_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    images = rng.standard_normal((n, 1, 6, 6)).astype(np.float32) + labels[:, None, None, None].astype(np.float32)
    return images, labels


def tiny_model():
    """Conv, batch norm, dropout and a linear layer: every kind of state a resume must restore."""
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * 3 * 3, 3))


# ---------------------------------------------------------------- clipping ---------------------

def test_clip_grad_norm_scales_all_gradients_by_max_norm_over_the_global_norm():
    # ‖(3, 4, 12)‖ = 13; max_norm 2.6 → factor 2.6 / (13 + 1e-6)
    a, b = with_grad([0.0, 0.0], [3.0, 4.0]), with_grad([[0.0]], [[12.0]])
    total = clip_grad_norm_([a, b], 2.6)
    assert total == 13.0
    factor = 2.6 / (13.0 + 1e-6)
    np.testing.assert_allclose(a.grad.data, [3 * factor, 4 * factor], rtol=1e-12)
    np.testing.assert_allclose(b.grad.data, [[12 * factor]], rtol=1e-12)
    new_norm = math.sqrt(float((a.grad.data ** 2).sum() + (b.grad.data ** 2).sum()))
    assert new_norm == pytest.approx(2.6, rel=1e-6)


def test_clip_grad_norm_leaves_gradients_below_the_threshold_alone_and_skips_missing_ones():
    a, b, c = with_grad([0.0, 0.0], [3.0, 4.0]), param([1.0]), with_grad([0.0], [0.0])
    assert clip_grad_norm_([a, b, c], 5.1) == 5.0
    np.testing.assert_array_equal(a.grad.data, [3.0, 4.0])
    assert b.grad is None


def test_clip_grad_norm_with_inf_norm_type_uses_the_largest_absolute_value():
    a, b = with_grad([0.0, 0.0], [3.0, -4.0]), with_grad([0.0], [2.0])
    assert clip_grad_norm_([a, b], 2.0, norm_type=math.inf) == 4.0
    np.testing.assert_allclose(a.grad.data, [1.5, -2.0], rtol=1e-6)


def test_clip_grad_norm_keeps_float32_gradients_float32_and_can_refuse_a_nonfinite_norm():
    p = minicnn.Tensor(np.zeros(2, np.float32), requires_grad=True)
    p.grad = minicnn.Tensor(np.array([30.0, 40.0], np.float32))
    clip_grad_norm_([p], 1.0)
    assert p.grad.dtype == np.float32
    p.grad = minicnn.Tensor(np.array([np.inf, 1.0], np.float32))
    with pytest.raises(RuntimeError, match="inf"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_([p], 0.0)


# ---------------------------------------------------------------- mixup ------------------------

def test_one_hot_rows():
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])


def test_mixup_blends_images_and_one_hot_targets_with_the_same_lambda_and_permutation():
    images = np.arange(4 * 2, dtype=np.float32).reshape(4, 2)
    labels = np.array([0, 1, 2, 1])
    mixed, targets, lam = mixup(images, labels, 0.2, 3, np.random.default_rng(5), lam=0.75)
    permutation = np.random.default_rng(5).permutation(4)      # the same generator state draws the same π
    assert lam == 0.75
    np.testing.assert_allclose(mixed, 0.75 * images + 0.25 * images[permutation])
    expected = np.zeros((4, 3), np.float32)
    for i in range(4):
        expected[i, labels[i]] += 0.75
        expected[i, labels[permutation[i]]] += 0.25
    np.testing.assert_allclose(targets, expected)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0)
    assert mixed.dtype == targets.dtype == np.float32


def test_mixup_draws_lambda_from_beta_alpha_alpha_with_the_given_generator():
    images, labels = np.zeros((3, 1), np.float32), np.array([0, 1, 2])
    _, _, lam = mixup(images, labels, 0.2, 3, np.random.default_rng(7))
    assert lam == np.random.default_rng(7).beta(0.2, 0.2)
    with pytest.raises(ValueError, match="alpha"):
        mixup(images, labels, 0.0, 3, np.random.default_rng(0))


def test_mixup_targets_go_through_cross_entropy_as_soft_targets_with_label_smoothing():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 3))
    _, targets, _ = mixup(np.zeros((4, 1)), np.array([0, 1, 2, 0]), 0.2, 3, np.random.default_rng(1), lam=0.6)
    loss = F.cross_entropy(minicnn.Tensor(logits), targets, label_smoothing=0.1).item()
    smoothed = 0.9 * targets + 0.1 / 3
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert loss == pytest.approx(float(-(smoothed * log_p).sum(axis=1).mean()), rel=1e-12)


# ---------------------------------------------------------------- EMA --------------------------

def test_ema_update_is_decay_times_average_plus_one_minus_decay_times_parameter():
    model = nn.Linear(2, 1)
    model.weight.data[...] = [[1.0, 2.0]]
    ema = ModelEMA(model, decay=0.9, warmup=False)
    model.weight.data[...] = [[3.0, 0.0]]
    ema.update(model)
    np.testing.assert_allclose(ema.shadow["weight"], [[0.9 * 1 + 0.1 * 3, 0.9 * 2 + 0.1 * 0]], rtol=1e-6)
    model.weight.data[...] = [[0.0, 0.0]]
    ema.update(model)
    np.testing.assert_allclose(ema.shadow["weight"], [[0.9 * 1.2, 0.9 * 1.8]], rtol=1e-6)


def test_ema_warmup_uses_tensorflows_min_decay_rule():
    model = nn.Linear(1, 1, bias=False)
    model.weight.data[...] = 0.0
    ema = ModelEMA(model, decay=0.9999, warmup=True)
    assert ema.current_decay() == pytest.approx(2 / 11)            # (1 + n)/(10 + n), n = 1
    model.weight.data[...] = 1.0
    ema.update(model)
    assert float(ema.shadow["weight"][0, 0]) == pytest.approx(1 - 2 / 11, rel=1e-6)
    ema.num_updates = 10 ** 6
    assert ema.current_decay() == 0.9999


def test_ema_average_parameters_swaps_the_averages_in_and_restores_the_trained_weights():
    model = nn.Linear(1, 1, bias=False)
    model.weight.data[...] = 2.0
    ema = ModelEMA(model, decay=0.5, warmup=False)
    model.weight.data[...] = 4.0
    ema.update(model)                                               # average 3
    with ema.average_parameters(model):
        assert float(model.weight.data[0, 0]) == 3.0
    assert float(model.weight.data[0, 0]) == 4.0


# ---------------------------------------------------------------- metrics ----------------------

def test_top1_and_top5_on_hand_made_logits():
    logits = np.array([[9, 8, 7, 6, 5, 4, 3],       # true 0: rank 1
                       [9, 8, 7, 6, 5, 4, 3],       # true 4: rank 5
                       [9, 8, 7, 6, 5, 4, 3],       # true 6: rank 7
                       [0, 1, 2, 3, 4, 5, 6.0]])    # true 6: rank 1
    targets = np.array([0, 4, 6, 6])
    assert topk_correct(logits, targets, (1, 5)) == [2, 3]
    assert accuracy(logits, targets, (1, 2, 5)) == [0.5, 0.5, 0.75]


def test_topk_ties_rank_the_lower_class_first_and_k_beyond_k_classes_counts_everything():
    logits = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    assert topk_correct(logits, np.array([0, 1]), (1, 10)) == [1, 2]
    with pytest.raises(ValueError, match="class indices"):
        topk_correct(logits, np.array([0.0, 1.0]))


# ---------------------------------------------------------------- history ----------------------

def test_history_saves_json_atomically_with_nan_as_null(tmp_path):
    history = History()
    history.append({"epoch": 1, "train_loss": np.float32(0.5), "val_loss": float("nan")})
    history.save(tmp_path / "history.json")
    data = json.loads((tmp_path / "history.json").read_text())
    assert data == {"history": [{"epoch": 1, "train_loss": 0.5, "val_loss": None}]}
    assert History.load(tmp_path / "history.json").column("train_loss") == ([1], [0.5])
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]      # no temporary file left


# ---------------------------------------------------------------- the loss ---------------------

class TwoHeads(nn.Module):
    """Returns (logits, aux) like Inception-v3 in training mode."""

    def __init__(self):
        super().__init__()
        self.main, self.aux = nn.Linear(4, 3), nn.Linear(4, 3)

    def forward(self, x):
        x = x.reshape(x.shape[0], -1)
        return self.main(x), self.aux(x)


def test_loss_adds_the_auxiliary_loss_with_weight_0_4_and_smooths_both_targets():
    minicnn.manual_seed(0)
    model = TwoHeads()
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), [], recipe=Recipe(label_smoothing=0.1),
                      progress=False, log=lambda *a: None)
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 1, 0])
    outputs = model(minicnn.Tensor(x))
    expected = (F.cross_entropy(outputs[0], y, label_smoothing=0.1).item()
                + 0.4 * F.cross_entropy(outputs[1], y, label_smoothing=0.1).item())
    assert trainer.loss(outputs, y, x).item() == pytest.approx(expected, rel=1e-6)


def test_loss_with_a_teacher_adds_the_distillation_term_at_temperature_20():
    minicnn.manual_seed(0)
    student, teacher = nn.Linear(4, 3), nn.Linear(4, 3)
    trainer = Trainer(student, optim.SGD(student.parameters(), lr=0.1), [], teacher=teacher, progress=False)
    x = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    logits = student(minicnn.Tensor(x))
    expected = (F.cross_entropy(logits, y).item()
                + F.distillation_loss(logits, teacher(minicnn.Tensor(x)), 20.0).item())
    assert trainer.loss(logits, y, x).item() == pytest.approx(expected, rel=1e-6)
    assert not teacher.training


# ---------------------------------------------------------------- fitting ----------------------

def make_run(out_dir, crash_at=None, recipe=None, model_seed=0):
    """A fresh model, optimizer, scheduler and loaders: what a new process would build before resuming."""
    minicnn.manual_seed(model_seed)
    images, labels = tiny_data()
    model = tiny_model()
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = optim.SGD([{"params": decay, "weight_decay": 1e-3}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=0.1, momentum=0.9)
    scheduler = optim.LinearWarmup(optimizer, 3, after=optim.CosineAnnealingLR(optimizer, T_max=5))
    recipe = recipe or Recipe(label_smoothing=0.1, mixup_alpha=0.2, clip_grad_norm=2.0, ema_decay=0.99)
    transform = augmentation() if crash_at is None else CrashAt(augmentation(), crash_at, KeyboardInterrupt())
    train_loader = DataLoader((images, labels), 8, shuffle=True, drop_last=True, seed=3, transform=transform)
    val_loader = DataLoader((images[:16], labels[:16]), 8)
    return Trainer(model, optimizer, train_loader, val_loader, recipe=recipe, scheduler=scheduler,
                   scheduler_interval="step", out_dir=out_dir, seed=11, progress=False, log=lambda *a: None)


def flat_state(trainer):
    """Every array and number of the trained state, by name."""
    state = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    for index, s in trainer.optimizer.state_dict()["state"].items():
        state.update({f"optimizer.{index}.{k}": v for k, v in s.items()})
    if trainer.ema is not None:
        state.update({f"ema.{k}": v for k, v in trainer.ema.shadow.items()})
    return state


TRICKS = Recipe(label_smoothing=0.1, mixup_alpha=0.2, clip_grad_norm=2.0, ema_decay=0.99)
# float16 with a loss scale that overflows now and then and grows every 3 clean steps: the scaler's state matters
MIXED_PRECISION = Recipe(amp=True, loss_scale=2.0 ** 17, scale_growth_interval=3, ema_decay=0.99)


@pytest.mark.parametrize("recipe", [TRICKS, MIXED_PRECISION], ids=["tricks", "amp"])
def test_resuming_after_a_crash_gives_bit_identical_weights_and_optimizer_state(tmp_path, recipe):
    straight = make_run(tmp_path / "straight", recipe=recipe)
    straight.fit(2)

    crashed = make_run(tmp_path / "crashed", crash_at=4 + 3, recipe=recipe)    # killed at batch 3 of 4, epoch 2
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(2)
    assert load_checkpoint(tmp_path / "crashed" / "checkpoint.npz")["epoch"] == 1

    resumed = make_run(tmp_path / "crashed", model_seed=123, recipe=recipe)     # a new process, other weights
    assert resumed.resume(tmp_path / "crashed" / "checkpoint.npz") == 1
    resumed.fit(2)

    assert resumed.optimizer.param_groups[0]["lr"] == straight.optimizer.param_groups[0]["lr"]
    assert resumed.scheduler.state_dict() == straight.scheduler.state_dict()
    expected, actual = flat_state(straight), flat_state(resumed)
    assert expected.keys() == actual.keys()
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)
        assert actual[key].dtype == expected[key].dtype
    assert resumed.history.records[1]["train_loss"] == straight.history.records[1]["train_loss"]
    assert len(resumed.history) == 2
    assert resumed.scaler.state_dict() == straight.scaler.state_dict()


def test_a_nan_loss_stops_training_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path):
    trainer = make_run(tmp_path, recipe=Recipe())
    images, labels = tiny_data()
    poisoned = images.copy()
    poisoned[:] = np.nan
    trainer.fit(1)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    trainer.train_loader = DataLoader((poisoned, labels), 8)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2, step 1.*epoch 1.*intact"):
        trainer.fit(3)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before
    state = load_checkpoint(tmp_path / "checkpoint.npz")
    assert state["epoch"] == 1
    make_run(tmp_path / "other").model.load_state_dict(state["model"])
    assert len(json.loads((tmp_path / "history.json").read_text())["history"]) == 1


def test_fit_records_one_history_entry_per_epoch_with_top5_and_lr(tmp_path):
    trainer = make_run(tmp_path)
    history = trainer.fit(2)
    assert [r["epoch"] for r in history.records] == [1, 2]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "lr", "images_per_s"):
        assert key in history.records[-1]
    assert history.records[-1]["val_top5"] == 1.0            # 3 classes: the true one is always in the top 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz", "history.json"]


def test_scheduler_per_step_is_stepped_after_every_batch():
    class Counting:
        steps = 0

        def step(self):
            self.steps += 1

        def state_dict(self):
            return {"steps": self.steps}

    trainer = make_run(None, recipe=Recipe())
    trainer.scheduler, trainer.scheduler_interval = Counting(), "step"
    trainer.fit(1)
    assert trainer.scheduler.steps == len(trainer.train_loader)


def test_a_tiny_inception_v3_trains_with_its_auxiliary_loss_through_the_trainer():
    from minicnn import models
    minicnn.manual_seed(0)
    model = models.inception_v3(num_classes=3, in_channels=1, small_input=True, width_mult=1 / 16)
    images, labels = tiny_data(n=4)
    images = np.repeat(np.repeat(images, 5, axis=2), 5, axis=3)[:, :, :28, :28].copy()      # 28×28
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.01), [(images, labels)], progress=False,
                      log=lambda *a: None)
    outputs = model(minicnn.Tensor(images))
    assert isinstance(outputs, tuple) and len(outputs) == 2                   # (logits, aux) in training mode
    expected = F.cross_entropy(outputs[0], labels).item() + 0.4 * F.cross_entropy(outputs[1], labels).item()
    assert trainer.loss(outputs, labels, images).item() == pytest.approx(expected, rel=1e-5)
    loss, logits, classes = trainer.train_step(images, labels)
    assert math.isfinite(loss) and logits.shape == (4, 3)


def test_a_plateau_schedule_after_warm_up_gets_the_validation_loss_every_epoch():
    trainer = make_run(None, recipe=Recipe())
    plateau = optim.ReduceLROnPlateau(trainer.optimizer, factor=0.5, patience=0)
    trainer.scheduler, trainer.scheduler_interval = optim.LinearWarmup(trainer.optimizer, 1, after=plateau), "epoch"
    seen = []
    step = plateau.step
    plateau.step = lambda metric: (seen.append(metric), step(metric))
    trainer.fit(3)
    assert seen == [r["val_loss"] for r in trainer.history.records[1:]]      # epoch 1 was the warm-up
