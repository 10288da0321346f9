"""Specification of minicnn.training.evaluation: crops, flips, resizing, softmax averaging over views
(10-crop, dense, multi-scale, ensembles), evaluate() and the confusion matrix."""
import numpy as np
import pytest

import minicnn
from minicnn import models, nn
from minicnn.training import evaluation as E


def images(n=2, c=1, h=6, w=6, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(np.float32)


class MeanColumns(nn.Module):
    """A parameter-free "network" whose K = W logits are the column means: it sees crops and flips."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        return x.mean(axis=(1, 2))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- views -------------------------

def test_center_crop_takes_the_middle_window():
    x = np.arange(2 * 1 * 5 * 5, dtype=np.float32).reshape(2, 1, 5, 5)
    np.testing.assert_array_equal(E.center_crop(x, 3), x[:, :, 1:4, 1:4])
    with pytest.raises(ValueError, match="larger than the images"):
        E.center_crop(x, 6)


def test_ten_crop_is_four_corners_and_the_centre_then_their_mirror_images():
    x = images(n=3, c=2, h=6, w=7)
    views = E.ten_crop(x, 4)
    assert views.shape == (10, 3, 2, 4, 4)
    expected = [x[:, :, :4, :4], x[:, :, :4, 3:], x[:, :, 2:, :4], x[:, :, 2:, 3:], x[:, :, 1:5, 1:5]]
    for k, crop in enumerate(expected):
        np.testing.assert_array_equal(views[k], crop)
        np.testing.assert_array_equal(views[k + 5], crop[..., ::-1])


def test_ten_crop_protocol_averages_the_softmax_of_the_ten_views_not_their_logits():
    model, x = MeanColumns(), images(n=3, h=8, w=8)
    p = E.protocol_proba(model, x, "10crop", crop_size=5)
    expected = np.mean([softmax(view.mean(axis=(1, 2))) for view in E.ten_crop(x, 5)], axis=0)
    np.testing.assert_allclose(p, expected, rtol=1e-6)
    logits_average = softmax(np.mean([view.mean(axis=(1, 2)) for view in E.ten_crop(x, 5)], axis=0))
    assert not np.allclose(p, logits_average, rtol=1e-6)
    assert len(model.calls) == 10
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)


def test_resize_sets_the_shorter_side_keeps_constants_and_is_the_identity_at_the_same_size():
    x = images(n=2, c=3, h=6, w=9)
    assert E.resize(x, 4).shape == (2, 3, 4, 6)
    assert E.resize(x, 8).shape == (2, 3, 8, 12)
    np.testing.assert_allclose(E.resize(x, 6), x, rtol=1e-6)
    np.testing.assert_allclose(E.resize(np.full((1, 1, 4, 4), 2.5, np.float32), 7), 2.5, rtol=1e-6)


def test_resize_doubling_interpolates_between_pixel_centres():
    row = np.array([[[[0.0, 4.0]]]], np.float32)                     # 1×2 image
    np.testing.assert_allclose(E.resize(row, 2)[0, 0, 0], [0.0, 1.0, 3.0, 4.0])


# ---------------------------------------------------------------- dense evaluation --------------

def test_dense_evaluation_of_vgg_equals_the_normal_forward_at_the_training_size():
    minicnn.manual_seed(0)
    model = models.vgg11(num_classes=5, width_mult=1 / 16).eval()
    x = images(n=2, c=3, h=224, w=224)
    np.testing.assert_allclose(E.dense_scores(model, x), E.predict_logits(model, x), rtol=1e-5, atol=1e-6)
    no_flip = E.dense_proba(model, x, flip=False)
    np.testing.assert_allclose(no_flip, softmax(E.predict_logits(model, x)), rtol=1e-5)
    flipped = softmax(E.predict_logits(model, x[..., ::-1]))
    np.testing.assert_allclose(E.dense_proba(model, x), (no_flip + flipped) / 2, rtol=1e-5)


def test_dense_evaluation_on_a_larger_image_averages_the_class_score_map():
    minicnn.manual_seed(0)
    model = models.vgg11(num_classes=5, width_mult=1 / 16).eval()
    x = images(n=1, c=3, h=256, w=256)
    score_map = E.predict_logits(models.fc_to_conv(model), x)
    assert score_map.shape == (1, 5, 2, 2)                        # 256 → a 2×2 map (papers.md §3.3)
    np.testing.assert_allclose(E.dense_scores(model, x), score_map.mean(axis=(2, 3)), rtol=1e-6)


def test_dense_evaluation_runs_a_global_pool_network_on_the_whole_image():
    model = MeanColumns()
    x = images(n=2, h=7, w=7)
    np.testing.assert_allclose(E.dense_scores(model, x), x.mean(axis=(1, 2)), rtol=1e-6)


def test_multiscale_averages_the_posteriors_of_each_scale():
    model, x = MeanColumns(), images(n=2, h=8, w=8)
    # MeanColumns has K = W outputs, so use centre crops of one size at every scale.
    p = E.multiscale_proba(model, x, scales=[8, 10], crop_size=6, flip=False)
    expected = (softmax(E.center_crop(x, 6).mean(axis=(1, 2)))
                + softmax(E.center_crop(E.resize(x, 10), 6).mean(axis=(1, 2)))) / 2
    np.testing.assert_allclose(p, expected, rtol=1e-6)


def test_an_ensemble_averages_the_probabilities_of_its_models():
    minicnn.manual_seed(0)
    a, b = nn.Sequential(nn.Flatten(), nn.Linear(36, 4)), nn.Sequential(nn.Flatten(), nn.Linear(36, 4))
    x = images(n=3)
    expected = (softmax(E.predict_logits(a, x)) + softmax(E.predict_logits(b, x))) / 2
    np.testing.assert_allclose(E.ensemble_proba([a, b], x), expected, rtol=1e-6)


def test_an_unknown_protocol_is_a_clear_error():
    with pytest.raises(ValueError, match="protocol"):
        E.protocol_proba(MeanColumns(), images(), "144crop")


# ---------------------------------------------------------------- evaluate, confusion matrix ---

def test_evaluate_reports_mean_cross_entropy_and_top1_top5_over_batches():
    logits = np.random.default_rng(0).standard_normal((10, 6, 1, 1)).astype(np.float32)
    labels = np.random.default_rng(1).integers(0, 6, 10)
    batches = [(logits[:4], labels[:4]), (logits[4:], labels[4:])]
    result = E.evaluate(nn.Flatten(), batches)
    z = logits[:, :, 0, 0].astype(np.float64)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    assert result["loss"] == pytest.approx(-log_p[np.arange(10), labels].mean(), rel=1e-6)
    ranks = (z > z[np.arange(10), labels][:, None]).sum(axis=1)
    assert result["acc"] == np.mean(ranks == 0) and result["top5"] == np.mean(ranks < 5)
    assert result["n"] == 10


def test_evaluate_loss_is_finite_when_a_wrong_class_wins_by_a_mile():
    # Logits 2000 apart: softmax of the true class underflows to 0 even in float64, and log(0) = −inf
    # (with a RuntimeWarning); log-softmax gives the exact loss, 2000.
    logits = np.array([[2000.0, 0.0], [0.0, 1.0]], np.float32)[:, :, None, None]
    with np.errstate(divide="raise", invalid="raise"):       # log(0) raises
        result = E.evaluate(nn.Flatten(), [(logits, np.array([1, 1]))])
    expected = (2000.0 + np.log1p(np.exp(-1.0))) / 2
    assert result["loss"] == pytest.approx(expected, rel=1e-12)


def test_evaluate_restores_training_mode():
    model = nn.Flatten()
    E.evaluate(model, [(np.zeros((2, 3, 1, 1), np.float32), np.array([0, 1]))])
    assert model.training


def test_confusion_matrix_counts_true_rows_against_predicted_columns():
    counts = E.confusion_matrix(np.array([0, 1, 1, 2, 2, 2]), np.array([0, 1, 2, 2, 2, 0]), 3)
    np.testing.assert_array_equal(counts, [[1, 0, 1], [0, 1, 0], [0, 1, 2]])
    scores = np.eye(3)[[0, 1, 1]]
    np.testing.assert_array_equal(E.confusion_matrix(scores, np.array([0, 1, 2]), 3), [[1, 0, 0], [0, 1, 0], [0, 1, 0]])
