"""Specification of minicnn.optim.lr_scheduler: every schedule's lr sequence by hand and against PyTorch,
warm-up compositions, state dicts through minicnn.save/load, and bad arguments."""
import math

import numpy as np
import pytest

import minicnn
from minicnn import optim
from minicnn.optim import SGD, lr_scheduler
from minicnn.optim.lr_scheduler import (CosineAnnealingLR, ExponentialLR, LambdaLR, LinearWarmup, LRScheduler,
                                        MultiStepLR, ReduceLROnPlateau, StepLR, linear_scaling_rule)


def make_optimizer(lrs=(1.0,)):
    """An SGD with one parameter group per lr."""
    return SGD([{"params": [minicnn.Tensor(np.zeros(2), requires_grad=True)], "lr": lr} for lr in lrs], lr=1.0)


def lr_sequence(scheduler, steps, metrics=None):
    """The first group's lr at t = 0, 1, … steps (``metrics[i]`` is passed to the i-th step, if given)."""
    lrs = [scheduler.get_last_lr()[0]]
    for i in range(steps):
        scheduler.step() if metrics is None else scheduler.step(metrics[i])
        lrs.append(scheduler.get_last_lr()[0])
        assert scheduler.optimizer.param_groups[0]["lr"] == lrs[-1]       # get_last_lr is what was set
    return lrs


# ---------------------------------------------------------------------------------------------------------
# The closed-form schedules, by hand (lr = 1 unless said otherwise)

def test_step_lr_multiplies_by_gamma_every_step_size_steps():
    assert lr_sequence(StepLR(make_optimizer(), step_size=2, gamma=0.5), 5) == [1, 1, 0.5, 0.5, 0.25, 0.25]


def test_step_lr_gives_inceptions_decay_of_0_94_every_two_epochs():
    scheduler = StepLR(make_optimizer([0.045]), step_size=2, gamma=0.94)
    np.testing.assert_allclose(lr_sequence(scheduler, 5), [0.045, 0.045, 0.045 * 0.94, 0.045 * 0.94,
                                                            0.045 * 0.94 ** 2, 0.045 * 0.94 ** 2], rtol=1e-15)


def test_multistep_lr_multiplies_by_gamma_at_each_milestone():
    scheduler = MultiStepLR(make_optimizer(), milestones=[2, 5], gamma=0.5)
    assert lr_sequence(scheduler, 6) == [1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert scheduler.last_epoch == 6


def test_exponential_lr_multiplies_by_gamma_every_step():
    assert lr_sequence(ExponentialLR(make_optimizer(), gamma=0.5), 3) == [1, 0.5, 0.25, 0.125]


def test_cosine_annealing_follows_half_a_cosine_to_eta_min_in_t_max_steps():
    # lr(t) = ½(1 + cos(πt/4)): 1, ½(1 + √2/2), ½, ½(1 − √2/2), 0
    half_root2 = math.sqrt(2) / 2
    np.testing.assert_allclose(lr_sequence(CosineAnnealingLR(make_optimizer(), T_max=4), 4),
                               [1, (1 + half_root2) / 2, 0.5, (1 - half_root2) / 2, 0], rtol=1e-15, atol=1e-16)
    # with eta_min = 0.2: 0.2 + 0.8·½(1 + cos(πt/2)) = 1, 0.6, 0.2
    np.testing.assert_allclose(lr_sequence(CosineAnnealingLR(make_optimizer(), T_max=2, eta_min=0.2), 2),
                               [1, 0.6, 0.2], rtol=1e-15)


def test_cosine_annealing_rises_again_past_t_max_like_pytorchs():
    np.testing.assert_allclose(lr_sequence(CosineAnnealingLR(make_optimizer(), T_max=2), 4)[2:], [0, 0.5, 1],
                               atol=1e-15)


def test_lambda_lr_multiplies_each_groups_base_lr_by_its_function():
    optimizer = make_optimizer([1.0, 0.5])
    scheduler = LambdaLR(optimizer, [lambda t: 1 / (t + 1), lambda t: 2 ** t])
    assert lr_sequence(scheduler, 3) == [1, 0.5, 1 / 3, 0.25]
    assert scheduler.get_last_lr() == [0.25, 0.5 * 8]


def test_lambda_lr_sets_the_lr_of_step_zero_when_built():
    optimizer = make_optimizer([0.5])
    LambdaLR(optimizer, lambda t: 0.25 * (t + 1))
    assert optimizer.param_groups[0]["lr"] == 0.125 and optimizer.param_groups[0]["initial_lr"] == 0.5


def test_each_group_follows_the_schedule_from_its_own_base_lr():
    optimizer = make_optimizer([1.0, 0.25])
    scheduler = StepLR(optimizer, step_size=1, gamma=0.5)
    scheduler.step()
    assert scheduler.get_last_lr() == [0.5, 0.125]
    assert [g["lr"] for g in optimizer.param_groups] == [0.5, 0.125]
    assert [g["initial_lr"] for g in optimizer.param_groups] == [1.0, 0.25]


def test_the_schedule_owns_the_lr_a_hand_set_lr_lasts_until_the_next_step():
    optimizer = make_optimizer([1.0])
    scheduler = StepLR(optimizer, step_size=10)
    optimizer.param_groups[0]["lr"] = 123.0
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == 1.0                  # closed form: lr(1) = η


def test_a_second_scheduler_keeps_the_recorded_initial_lr():
    optimizer = make_optimizer([1.0])
    StepLR(optimizer, step_size=1, gamma=0.5).step()               # lr is now 0.5
    assert ExponentialLR(optimizer, gamma=0.5).base_lrs == [1.0]


def test_get_last_lr_is_a_copy():
    scheduler = StepLR(make_optimizer([1.0]), step_size=1)
    scheduler.get_last_lr().append(5.0)
    assert scheduler.get_last_lr() == [1.0]


def test_a_parameter_group_added_after_the_scheduler_is_a_clear_error():
    optimizer = make_optimizer([1.0])
    scheduler = StepLR(optimizer, step_size=1)
    optimizer.add_param_group({"params": [minicnn.Tensor(np.zeros(1), requires_grad=True)]})
    with pytest.raises(ValueError, match="StepLR: the optimizer has 2 parameter groups but the scheduler was built for 1"):
        scheduler.step()


def test_linear_scaling_rule_scales_the_lr_with_the_batch():
    assert linear_scaling_rule(0.1, 1024) == pytest.approx(0.4)      # Bag of Tricks' example
    assert linear_scaling_rule(0.1, 256) == 0.1
    assert linear_scaling_rule(0.1, 32, base_batch_size=128) == pytest.approx(0.025)


# ---------------------------------------------------------------------------------------------------------
# ReduceLROnPlateau, by hand

def test_plateau_reduces_after_patience_plus_one_epochs_without_improvement():
    # patience 1: best 5, 4 (better), 4 (bad 1), 4 (bad 2 > 1: lr × 0.5), 3 (better), 3, 3 (bad 2: × 0.5), 3
    scheduler = ReduceLROnPlateau(make_optimizer(), factor=0.5, patience=1, threshold=0)
    assert lr_sequence(scheduler, 8, [5, 4, 4, 4, 3, 3, 3, 3])[1:] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert scheduler.best == 3 and scheduler.num_bad_epochs == 1 and scheduler.last_epoch == 8


def test_plateau_cooldown_ignores_bad_epochs_after_a_reduction():
    # as above, but the 2 epochs after the reduction do not count: the next one comes 2 epochs later
    scheduler = ReduceLROnPlateau(make_optimizer(), factor=0.5, patience=1, threshold=0, cooldown=2)
    assert lr_sequence(scheduler, 8, [5, 4, 4, 4, 3, 3, 3, 3])[1:] == [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25]


def test_plateau_max_mode_with_relative_and_absolute_thresholds():
    # best 0.5; 0.54 < 0.5·1.1 = 0.55 and < 0.5 + 0.05: bad (patience 0: ÷10); 0.56 better either way;
    # 0.612: better than 0.56 + 0.05 = 0.61 (abs) but not than 0.56·1.1 = 0.616 (rel)
    accuracies = [0.5, 0.54, 0.56, 0.612]
    rel = ReduceLROnPlateau(make_optimizer(), mode="max", patience=0, threshold=0.1)
    absolute = ReduceLROnPlateau(make_optimizer(), mode="max", patience=0, threshold=0.05, threshold_mode="abs")
    np.testing.assert_allclose(lr_sequence(rel, 4, accuracies)[1:], [1, 0.1, 0.1, 0.01], rtol=1e-15)
    np.testing.assert_allclose(lr_sequence(absolute, 4, accuracies)[1:], [1, 0.1, 0.1, 0.1], rtol=1e-15)


def test_plateau_never_goes_below_min_lr():
    # ÷10 each epoch without improvement: 1 → 0.1 → max(0.01, 0.05) = 0.05 → 0.05
    scheduler = ReduceLROnPlateau(make_optimizer([1.0, 1.0]), patience=0, min_lr=[0.05, 0.0])
    np.testing.assert_allclose(lr_sequence(scheduler, 4, [1.0] * 4)[1:], [1, 0.1, 0.05, 0.05], rtol=1e-15)
    np.testing.assert_allclose(scheduler.get_last_lr(), [0.05, 0.001], rtol=1e-15)


def test_plateau_accepts_metrics_as_numpy_scalars_and_tensors():
    scheduler = ReduceLROnPlateau(make_optimizer(), patience=0)
    scheduler.step(np.float32(2.0))
    scheduler.step(minicnn.tensor(3.0))
    assert scheduler.best == 2.0 and scheduler.get_last_lr() == [0.1]
    with pytest.raises(TypeError, match="ReduceLROnPlateau.step: expected the metric as a number"):
        scheduler.step("low")


# ---------------------------------------------------------------------------------------------------------
# LinearWarmup: a ramp over the first m steps, then the wrapped schedule from its step 0

def test_warmup_alone_ramps_i_eta_over_m_then_holds_eta():
    # Bag of Tricks: the i-th of m = 4 batches gets i·η/4
    assert lr_sequence(LinearWarmup(make_optimizer([0.4]), warmup_steps=4), 5) == [0.1, 0.2, 0.30000000000000004,
                                                                                     0.4, 0.4, 0.4]


def test_warmup_start_factor_starts_the_ramp_higher():
    # s = 0.5, m = 4: η·(0.5 + 0.5·i/4) for i = 1 … 4
    assert lr_sequence(LinearWarmup(make_optimizer(), 4, start_factor=0.5), 4) == [0.625, 0.75, 0.875, 1, 1]


def test_warmup_of_one_step_is_no_warmup():
    optimizer = make_optimizer()
    assert lr_sequence(LinearWarmup(optimizer, 1, after=StepLR(optimizer, 1, 0.5)), 2) == [1, 1, 0.5]


def test_warmup_then_step_decay():
    optimizer = make_optimizer()
    scheduler = LinearWarmup(optimizer, 4, after=StepLR(optimizer, step_size=2, gamma=0.5))
    assert lr_sequence(scheduler, 8) == [0.25, 0.5, 0.75, 1, 1, 1, 0.5, 0.5, 0.25]
    assert scheduler.after.last_epoch == 4                        # stepped only after the warm-up


def test_warmup_then_cosine_counts_the_cosine_from_the_end_of_the_warmup():
    # Bag of Tricks: η_t = ½(1 + cos(tπ/T))·η with t counted after the warm-up
    optimizer = make_optimizer()
    scheduler = LinearWarmup(optimizer, 4, after=CosineAnnealingLR(optimizer, T_max=4))
    half_root2 = math.sqrt(2) / 2
    np.testing.assert_allclose(lr_sequence(scheduler, 8),
                               [0.25, 0.5, 0.75, 1, 1, (1 + half_root2) / 2, 0.5, (1 - half_root2) / 2, 0],
                               rtol=1e-15, atol=1e-16)


def test_warmup_then_plateau_ignores_the_metrics_of_the_warmup_steps():
    # m = 2: 0.5, 1; the metrics of the two warm-up steps (10, 10) are not seen by the plateau schedule,
    # which then sees 10 (best), 10 (bad 1 > patience 0: × 0.5), 9 (better)
    optimizer = make_optimizer()
    scheduler = LinearWarmup(optimizer, 2, after=ReduceLROnPlateau(optimizer, factor=0.5, patience=0))
    assert lr_sequence(scheduler, 5, [10, 10, 10, 10, 9]) == [0.5, 1, 1, 1, 0.5, 0.5]
    assert scheduler.after.last_epoch == 3 and scheduler.after.best == 9


def test_warmup_with_lambda_starts_the_wrapped_schedule_at_its_own_step_zero():
    optimizer = make_optimizer()
    scheduler = LinearWarmup(optimizer, 2, after=LambdaLR(optimizer, lambda t: 0.5 / (t + 1)))
    assert lr_sequence(scheduler, 4) == [0.5, 1, 0.5, 0.25, 0.5 / 3]


def test_warmup_checks_how_it_is_stepped():
    optimizer = make_optimizer()
    with pytest.raises(ValueError, match="LinearWarmup.step: the wrapped ReduceLROnPlateau needs the metric"):
        LinearWarmup(optimizer, 2, after=ReduceLROnPlateau(optimizer)).step()
    with pytest.raises(ValueError, match="LinearWarmup.step: got a metric, but only a wrapped ReduceLROnPlateau"):
        LinearWarmup(optimizer, 2, after=StepLR(optimizer, 2)).step(0.5)


# ---------------------------------------------------------------------------------------------------------
# State dicts: save, load into freshly built optimizer and scheduler, continue identically

def scheduler_makers():
    return {
        "step": lambda o: StepLR(o, step_size=3, gamma=0.5),
        "multistep": lambda o: MultiStepLR(o, milestones=[2, 4, 7], gamma=0.5),
        "exponential": lambda o: ExponentialLR(o, gamma=0.9),
        "cosine": lambda o: CosineAnnealingLR(o, T_max=9, eta_min=0.01),
        "lambda": lambda o: LambdaLR(o, lambda t: 1 / (1 + t)),
        "plateau": lambda o: ReduceLROnPlateau(o, patience=1, cooldown=1, factor=0.5, min_lr=[0.0, 0.01]),
        "warmup-cosine": lambda o: LinearWarmup(o, 3, after=CosineAnnealingLR(o, T_max=6)),
        "warmup-plateau": lambda o: LinearWarmup(o, 2, after=ReduceLROnPlateau(o, patience=0, factor=0.5),
                                                 start_factor=0.1),
        "warmup": lambda o: LinearWarmup(o, 4),
    }


METRICS = [5.0, 4.0, 4.0, 4.0, 4.5, 3.0, 3.0, 3.0, 3.0, 2.0, 2.5, 2.5]


def run_epochs(optimizer, scheduler, epochs, params, rng_seed):
    """Train ``epochs`` epochs of 2 steps each with gradients from ``rng_seed``; return the lrs used."""
    rng = np.random.default_rng(rng_seed)
    plateau = isinstance(scheduler, ReduceLROnPlateau) or isinstance(getattr(scheduler, "after", None),
                                                                     ReduceLROnPlateau)
    used = []
    for epoch in epochs:
        for _ in range(2):
            for p in params:
                p.grad = minicnn.Tensor(rng.standard_normal(p.shape))
            optimizer.step()
            used.append([g["lr"] for g in optimizer.param_groups])
        scheduler.step(METRICS[epoch]) if plateau else scheduler.step()
    return used


def build(make):
    params = [minicnn.Tensor(np.ones(3), requires_grad=True), minicnn.Tensor(np.ones(2), requires_grad=True)]
    optimizer = SGD([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.05}], lr=0.1, momentum=0.9)
    return params, optimizer, make(optimizer)


@pytest.mark.parametrize("name", list(scheduler_makers()))
@pytest.mark.parametrize("saved_at", [0, 5])
def test_resuming_from_saved_state_dicts_continues_the_schedule_identically(name, saved_at, tmp_path):
    make = scheduler_makers()[name]
    params, optimizer, scheduler = build(make)
    run_epochs(optimizer, scheduler, range(saved_at), params, rng_seed=0)
    minicnn.save({"params": [p.data for p in params], "optimizer": optimizer.state_dict(),
                  "scheduler": scheduler.state_dict()}, tmp_path / "c.npz")
    expected = run_epochs(optimizer, scheduler, range(saved_at, 12), params, rng_seed=1)

    checkpoint = minicnn.load(tmp_path / "c.npz")
    resumed_params, resumed_optimizer, resumed = build(make)        # built as at the start, then loaded
    for p, array in zip(resumed_params, checkpoint["params"]):
        p.data[...] = array
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    resumed.load_state_dict(checkpoint["scheduler"])
    assert resumed.last_epoch == saved_at
    assert run_epochs(resumed_optimizer, resumed, range(saved_at, 12), resumed_params, rng_seed=1) == expected
    assert resumed.state_dict() == scheduler.state_dict()
    for p, q in zip(params, resumed_params):
        np.testing.assert_array_equal(q.data, p.data)


def test_state_dicts_hold_numbers_and_lists_and_leave_out_the_optimizer_and_functions():
    optimizer = make_optimizer([1.0, 0.5])
    assert LambdaLR(optimizer, lambda t: 1.0).state_dict() == {"base_lrs": [1.0, 0.5], "last_epoch": 0,
                                                               "_last_lr": [1.0, 0.5]}
    assert StepLR(optimizer, 2, 0.5).state_dict() == {"step_size": 2, "gamma": 0.5, "base_lrs": [1.0, 0.5],
                                                      "last_epoch": 0, "_last_lr": [1.0, 0.5]}
    state = LinearWarmup(optimizer, 2, after=ExponentialLR(optimizer, 0.5)).state_dict()
    assert state["after"]["gamma"] == 0.5 and state["warmup_steps"] == 2
    assert ReduceLROnPlateau(optimizer).state_dict()["best"] == math.inf


def test_state_dict_is_a_snapshot():
    scheduler = StepLR(make_optimizer(), 1, 0.5)
    state = scheduler.state_dict()
    scheduler.step()
    assert state["last_epoch"] == 0 and state["_last_lr"] == [1.0]


@pytest.mark.parametrize("scheduler, state_dict, message", [
    (lambda o: CosineAnnealingLR(o, 4), lambda o: StepLR(o, 2).state_dict(),
     r"CosineAnnealingLR.load_state_dict: expected a dict with keys"),
    (lambda o: StepLR(o, 2), lambda o: [1, 2], r"StepLR.load_state_dict: expected a dict with keys .* got list"),
    (lambda o: LinearWarmup(o, 2), lambda o: LinearWarmup(o, 2, after=StepLR(o, 2)).state_dict(),
     "LinearWarmup.load_state_dict: the state dict was saved with a wrapped scheduler, this one has none"),
    (lambda o: LinearWarmup(o, 2, after=StepLR(o, 2)), lambda o: LinearWarmup(o, 2, after=ExponentialLR(o, 0.5)).state_dict(),
     "StepLR.load_state_dict: expected a dict with keys"),
    (lambda o: LinearWarmup(o, 2), lambda o: StepLR(o, 2).state_dict(),
     "LinearWarmup.load_state_dict: expected a dict from LinearWarmup.state_dict()"),
], ids=["other-class", "not-a-dict", "warmup-after-missing", "warmup-after-other-class", "warmup-from-steplr"])
def test_load_state_dict_rejects_the_state_of_another_schedule(scheduler, state_dict, message):
    target = scheduler(make_optimizer())
    target.step()
    before = target.state_dict()
    with pytest.raises(ValueError, match=message):
        target.load_state_dict(state_dict(make_optimizer()))
    assert target.state_dict() == before                          # nothing half-loaded


# ---------------------------------------------------------------------------------------------------------
# Bad arguments

@pytest.mark.parametrize("build_it, message", [
    (lambda o: StepLR(o, step_size=0), "StepLR: step_size must be an integer >= 1, got 0"),
    (lambda o: StepLR(o, step_size=2.5), "StepLR: step_size must be an integer >= 1, got 2.5"),
    (lambda o: StepLR(o, step_size=2, gamma=-0.1), "StepLR: gamma must be > 0"),
    (lambda o: MultiStepLR(o, milestones=[30, 10]), r"MultiStepLR: milestones must be strictly increasing, got \[30, 10\]"),
    (lambda o: MultiStepLR(o, milestones=[10, -1]), "MultiStepLR: each milestone must be an integer >= 0"),
    (lambda o: MultiStepLR(o, milestones=30), "MultiStepLR: milestones must be a list of step numbers"),
    (lambda o: ExponentialLR(o, gamma=0), "ExponentialLR: gamma must be > 0"),
    (lambda o: ExponentialLR(o, gamma=float("nan")), "ExponentialLR: gamma must be a finite number"),
    (lambda o: CosineAnnealingLR(o, T_max=0), "CosineAnnealingLR: T_max must be an integer >= 1"),
    (lambda o: CosineAnnealingLR(o, T_max=10, eta_min=-1e-3), "CosineAnnealingLR: eta_min must be >= 0"),
    (lambda o: LambdaLR(o, [lambda t: 1.0, lambda t: 1.0]), "LambdaLR: expected one lr_lambda or 1"),
    (lambda o: ReduceLROnPlateau(o, mode="maximum"), "ReduceLROnPlateau: mode must be 'min' or 'max', got 'maximum'"),
    (lambda o: ReduceLROnPlateau(o, factor=1.0), "ReduceLROnPlateau: factor must be < 1"),
    (lambda o: ReduceLROnPlateau(o, factor=0), "ReduceLROnPlateau: factor must be > 0"),
    (lambda o: ReduceLROnPlateau(o, patience=-1), "ReduceLROnPlateau: patience must be an integer >= 0"),
    (lambda o: ReduceLROnPlateau(o, threshold_mode="relative"), "ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs'"),
    (lambda o: ReduceLROnPlateau(o, cooldown=1.5), "ReduceLROnPlateau: cooldown must be an integer >= 0"),
    (lambda o: ReduceLROnPlateau(o, min_lr=[0, 0]), "ReduceLROnPlateau: expected one min_lr or 1"),
    (lambda o: ReduceLROnPlateau(o, min_lr=-1), "ReduceLROnPlateau: min_lr must be >= 0"),
    (lambda o: LinearWarmup(o, warmup_steps=0), "LinearWarmup: warmup_steps must be an integer >= 1, got 0"),
    (lambda o: LinearWarmup(o, warmup_steps=5, start_factor=1.5), r"LinearWarmup: start_factor must be in \[0, 1\]"),
    (lambda o: LinearWarmup(o, 5, after=StepLR(make_optimizer(), 2)), "LinearWarmup: after .StepLR. was built on another optimizer"),
    (lambda o: linear_scaling_rule(0.1, 0), "linear_scaling_rule: batch_size must be an integer >= 1, got 0"),
    (lambda o: linear_scaling_rule(-0.1, 256), "linear_scaling_rule: base_lr must be >= 0"),
    (lambda o: linear_scaling_rule(0.1, 256, base_batch_size=0), "linear_scaling_rule: base_batch_size must be"),
], ids=lambda v: None)
def test_bad_arguments_raise_value_error_naming_the_class(build_it, message):
    with pytest.raises(ValueError, match=message):
        build_it(make_optimizer())


@pytest.mark.parametrize("build_it, message", [
    (lambda o: StepLR("sgd", 2), "StepLR: expected a minicnn Optimizer"),
    (lambda o: ReduceLROnPlateau(None), "ReduceLROnPlateau: expected a minicnn Optimizer"),
    (lambda o: LambdaLR(o, 0.5), "LambdaLR: lr_lambda must be a function of the step"),
    (lambda o: LinearWarmup(o, 5, after="cosine"), "LinearWarmup: after must be a scheduler"),
], ids=["not-an-optimizer", "plateau-not-an-optimizer", "lambda-not-callable", "after-not-a-scheduler"])
def test_wrong_kinds_of_object_raise_type_error_naming_the_class(build_it, message):
    with pytest.raises(TypeError, match=message):
        build_it(make_optimizer())


def test_exports_like_pytorch():
    assert optim.lr_scheduler is lr_scheduler and optim.StepLR is StepLR and optim.LinearWarmup is LinearWarmup
    assert optim.linear_scaling_rule is linear_scaling_rule
    assert all(issubclass(c, LRScheduler) for c in (StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR,
                                                      LambdaLR, ReduceLROnPlateau, LinearWarmup))


# ---------------------------------------------------------------------------------------------------------
# PyTorch as an oracle: the lr sequence of every schedule, two parameter groups

def pair(torch):
    """Our optimizer and PyTorch's, each with two groups at lrs 0.1 and 0.02."""
    ours = SGD([{"params": [minicnn.Tensor(np.zeros(1), requires_grad=True)], "lr": lr} for lr in (0.1, 0.02)], lr=1.0)
    theirs = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in (0.1, 0.02)], lr=1.0)
    return ours, theirs


def assert_same_lrs(ours, theirs, steps, metrics=None):
    for i in range(steps + 1):
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12, atol=1e-15,
                                   err_msg=f"step {i}")
        if i < steps:
            theirs.optimizer.step()                                   # PyTorch warns if the scheduler steps first
            if metrics is None:
                ours.step()
                theirs.step()
            else:
                ours.step(metrics[i])
                theirs.step(metrics[i])


SCHEDULES = {
    "step": ("StepLR", dict(step_size=3, gamma=0.3)),
    "multistep": ("MultiStepLR", dict(milestones=[2, 3, 9], gamma=0.5)),
    "exponential": ("ExponentialLR", dict(gamma=0.94 ** 0.5)),
    "cosine": ("CosineAnnealingLR", dict(T_max=7)),
    "cosine-eta-min": ("CosineAnnealingLR", dict(T_max=5, eta_min=0.005)),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_closed_form_schedules_match_pytorch(name):
    torch = pytest.importorskip("torch")
    class_name, options = SCHEDULES[name]
    ours, theirs = pair(torch)
    assert_same_lrs(getattr(lr_scheduler, class_name)(ours, **options),
                    getattr(torch.optim.lr_scheduler, class_name)(theirs, **options), steps=20)


def test_lambda_lr_matches_pytorch():
    torch = pytest.importorskip("torch")
    lambdas = [lambda t: 0.95 ** t, lambda t: 1 / (1 + 0.1 * t)]
    ours, theirs = pair(torch)
    assert_same_lrs(LambdaLR(ours, lambdas), torch.optim.lr_scheduler.LambdaLR(theirs, lambdas), steps=15)


PLATEAU_OPTIONS = [
    dict(mode="min", factor=0.5, patience=1),
    dict(mode="min", factor=0.1, patience=0, threshold=0.05, threshold_mode="abs", cooldown=2),
    dict(mode="max", factor=0.3, patience=2, threshold=0.01, cooldown=1, min_lr=[0.001, 0.005]),
    dict(mode="max", factor=0.5, patience=0, threshold=0.1, threshold_mode="abs", min_lr=0.004, eps=1e-3),
]


@pytest.mark.parametrize("options", PLATEAU_OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_reduce_lr_on_plateau_matches_pytorch(options):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    metrics = np.round(np.cumsum(rng.normal(0.0, 0.1, 40)), 2).tolist()    # a noisy curve with plateaus
    ours, theirs = pair(torch)
    assert_same_lrs(ReduceLROnPlateau(ours, **options), torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **options),
                    steps=40, metrics=metrics)


WARMUP_AFTER = {
    "none": (None, None),
    "step": ("StepLR", dict(step_size=2, gamma=0.5)),
    "multistep": ("MultiStepLR", dict(milestones=[3, 6], gamma=0.1)),
    "exponential": ("ExponentialLR", dict(gamma=0.9)),
    "cosine": ("CosineAnnealingLR", dict(T_max=10)),
}


@pytest.mark.parametrize("start_factor", [0.0, 0.25])
@pytest.mark.parametrize("after", WARMUP_AFTER)
def test_warmup_compositions_match_pytorchs_linear_lr_then_the_schedule(after, start_factor):
    # Our ramp η·(s + (1 − s)(t + 1)/m) is PyTorch's LinearLR(s + (1 − s)/m, 1, total_iters = m − 1)
    torch = pytest.importorskip("torch")
    schedulers = torch.optim.lr_scheduler
    m = 5
    class_name, options = WARMUP_AFTER[after]
    ours, theirs = pair(torch)
    wrapped = None if class_name is None else getattr(lr_scheduler, class_name)(ours, **options)
    warmup = schedulers.LinearLR(theirs, start_factor=start_factor + (1 - start_factor) / m, end_factor=1.0,
                                 total_iters=m - 1)
    theirs_after = (schedulers.ConstantLR(theirs, factor=1.0, total_iters=0) if class_name is None
                    else getattr(schedulers, class_name)(theirs, **options))
    reference = schedulers.SequentialLR(theirs, [warmup, theirs_after], milestones=[m])
    assert_same_lrs(LinearWarmup(ours, m, after=wrapped, start_factor=start_factor), reference, steps=20)
