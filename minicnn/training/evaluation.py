"""Evaluation: loss and top-1/top-5 over a data set, and the test-time protocols of the papers.

Shape letters: N images, C channels, H, W their size, S the crop size, K classes, V views (crops,
flips, scales) of each image, OH, OW the size of a class-score map.

Every protocol turns a batch of preprocessed images (N, C, H, W) into class probabilities (N, K) by
**averaging softmax outputs** over several views of each image (AlexNet §4.1, VGG §3.2):

    protocol      views                                                          papers.md
    center        one centre crop S×S                                            §2.5, §5.2
    10crop        4 corners + centre, S×S, and their horizontal flips (V = 10)    §2.5 (AlexNet), §5.2
    dense         the whole image through the fully-convolutional network;       §3.3 (VGG)
                  the class-score map is averaged over space; + the flipped image
    multiscale    the image resized to several scales Q, each evaluated          §3.3 (VGG)
                  densely (or centre-cropped); the posteriors are averaged
    ensemble      several models; their posteriors are averaged                  §2.5, §3.3

Dense evaluation. A network ending in fully-connected layers (VGG, AlexNet) is first converted with
``minicnn.models.fc_to_conv``: fc6 becomes a conv whose kernel covers the whole final feature map of
a training-size input, fc7/fc8 1×1 convs. On a larger image it outputs a map of class scores
(N, K, OH, OW), one per window of the training size, sliding with the network's stride; the map is
averaged over space. At the training size the map is 1×1 and equals the ordinary logits. A network
that ends in a global average pool and one FC (ResNet, Inception, SENet, MobileNet) is already fully
convolutional in this sense: averaging features then applying the (linear) FC equals averaging the
per-position scores, so it is simply run on the whole image.

Images here are arrays that have been normalised already (crops and flips commute with per-channel
normalisation); for 28×28 data, pad to 32×32 first (papers.md §9 rule 5) so that 10-crop has corners.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd import Tensor, no_grad
from ..functional.loss import log_softmax_rows
from .metrics import AverageMeter, topk_correct

__all__ = ["evaluate", "predict_logits", "predict_proba", "softmax", "center_crop", "five_crop", "ten_crop",
           "hflip", "resize", "dense_scores", "dense_proba", "multiscale_proba", "ensemble_proba", "protocol_proba",
           "confusion_matrix", "PROTOCOLS"]

PROTOCOLS = ("center", "10crop", "dense", "multiscale")


# ---------------------------------------------------------------- running the model ------------

def _logits_of(outputs):
    """The main logits of a model's output: Inception returns (logits, aux) in training mode."""
    return outputs[0] if isinstance(outputs, tuple) else outputs


def _device_of(model):
    first = next(iter(model.parameters()), None)
    return "cpu" if first is None else first.device


def predict_logits(model, images, batch_size=256):
    """``model``'s outputs on ``images`` (N, C, H, W) in eval mode without a graph, batch by batch,
    concatenated: (N, K), or (N, K, OH, OW) for a fully-convolutional network. Returns an array on the
    model's device. The model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    device = _device_of(model)
    outputs = []
    try:
        with no_grad():
            for start in range(0, images.shape[0], batch_size):
                x = backend.to_device(images[start:start + batch_size], device)
                outputs.append(_logits_of(model(Tensor(x))).data)
    finally:
        model.train(was_training)
    return backend.get_array_module(outputs[0]).concatenate(outputs) if outputs else None


def softmax(scores):
    """Row softmax of (N, K) scores, computed as exp(s − max) / Σ exp(s − max)."""
    xp = backend.get_array_module(scores)
    shifted = scores - scores.max(axis=1, keepdims=True)
    e = xp.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def predict_proba(model, images, batch_size=256):
    """softmax of ``predict_logits``: class probabilities (N, K) of one view."""
    return softmax(predict_logits(model, images, batch_size))


def evaluate(model, batches, ks=(1, 5)):
    """Mean cross-entropy and top-k accuracies of ``model`` over ``batches`` (an iterable of
    (images, labels) arrays, e.g. a DataLoader), in eval mode without a graph.

    Returns {"loss": float, "acc": top-1 accuracy, "top5": top-5 accuracy, "n": images,
    "predictions": the predicted classes (N,), "labels": the true ones (N,)}.
    """
    loss, correct, n, predictions, targets = AverageMeter(), np.zeros(len(ks)), 0, [], []
    for images, labels in batches:
        labels = backend.as_numpy(labels)
        logits = predict_logits(model, images)
        xp = backend.get_array_module(logits)
        log_p = log_softmax_rows(logits.astype(np.float64))   # finite when a probability underflows
        loss.update(float(-log_p[xp.arange(len(labels)), xp.asarray(labels)].mean()), len(labels))
        logits = backend.as_numpy(logits)
        correct += topk_correct(logits, labels, ks)
        predictions.append(logits.argmax(axis=1))
        targets.append(labels)
        n += len(labels)
    result = {"loss": loss.average, "n": n,
              "predictions": np.concatenate(predictions) if predictions else np.zeros(0, np.int64),
              "labels": np.concatenate(targets) if targets else np.zeros(0, np.int64)}
    for k, c in zip(ks, correct):
        result["acc" if k == 1 else f"top{k}"] = c / n if n else float("nan")
    return result


# ---------------------------------------------------------------- views -------------------------

def _check_images(images, size, where):
    if images.ndim != 4:
        raise ValueError(f"{where}: expected images of shape (N, C, H, W), got shape {images.shape}")
    H, W = images.shape[2:]
    if size > H or size > W:
        raise ValueError(f"{where}: the crop size {size} is larger than the images ({H}×{W}); pad or "
                         f"resize them first")


def center_crop(images, size):
    """The central S×S window of each image: (N, C, H, W) -> (N, C, S, S) (a view)."""
    _check_images(images, size, "center_crop")
    H, W = images.shape[2:]
    top, left = (H - size) // 2, (W - size) // 2
    return images[:, :, top:top + size, left:left + size]


def five_crop(images, size):
    """[top-left, top-right, bottom-left, bottom-right, centre] S×S crops, each (N, C, S, S)."""
    _check_images(images, size, "five_crop")
    H, W = images.shape[2:]
    corners = [images[:, :, :size, :size], images[:, :, :size, W - size:],
               images[:, :, H - size:, :size], images[:, :, H - size:, W - size:]]
    return corners + [center_crop(images, size)]


def hflip(images):
    """Mirror left-right: (N, C, H, W), the last axis reversed."""
    return images[..., ::-1]


def ten_crop(images, size):
    """AlexNet's ten views: the five crops and their horizontal flips, stacked to (10, N, C, S, S)."""
    crops = five_crop(images, size)
    xp = backend.get_array_module(images)
    return xp.stack(crops + [hflip(c) for c in crops])


def resize(images, size):
    """Bilinear resize so that the SHORTER side becomes ``size`` (the papers' isotropic rescaling to
    scale Q): (N, C, H, W) -> (N, C, OH, OW). Pixel centres are aligned as in PIL and PyTorch's
    ``align_corners=False``: output pixel i samples the input at (i + 0.5)·H/OH − 0.5."""
    H, W = images.shape[2:]
    OH, OW = (size, int(round(W * size / H))) if H <= W else (int(round(H * size / W)), size)
    xp = backend.get_array_module(images)

    def weights(n_in, n_out):
        position = (xp.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        position = xp.clip(position, 0, n_in - 1)
        low = xp.floor(position).astype(np.int64)
        high = xp.minimum(low + 1, n_in - 1)
        frac = (position - low).astype(images.dtype)
        return low, high, frac

    (r0, r1, fr), (c0, c1, fc) = weights(H, OH), weights(W, OW)
    rows = images[:, :, r0, :] * (1 - fr)[:, None] + images[:, :, r1, :] * fr[:, None]    # (N, C, OH, W)
    return rows[:, :, :, c0] * (1 - fc) + rows[:, :, :, c1] * fc                          # (N, C, OH, OW)


# ---------------------------------------------------------------- protocols ---------------------

def _average_views(model, views, batch_size):
    """Mean over V views (a list or a (V, N, …) array) of the softmax outputs: (N, K)."""
    total = None
    for view in views:
        p = predict_proba(model, view, batch_size)
        total = p if total is None else total + p
    return total / len(views)


def _fully_convolutional(model):
    """``model`` itself if it ends in global pooling; its ``fc_to_conv`` version if it has an FC head."""
    from .. import nn
    from ..models import fc_to_conv
    from ..models.vgg import FullyConvolutional
    classifier = getattr(model, "classifier", None)
    has_fc_head = (getattr(model, "features", None) is not None and classifier is not None
                   and any(isinstance(m, nn.Linear) for m in classifier.modules()))
    if isinstance(model, FullyConvolutional) or not has_fc_head:
        return model
    return fc_to_conv(model)


def dense_scores(model, images, batch_size=64):
    """The class scores of dense evaluation, averaged over space: (N, K). ``model`` is converted with
    ``fc_to_conv`` when it has an FC head (see the module docstring)."""
    scores = predict_logits(_fully_convolutional(model), images, batch_size)
    return scores.mean(axis=(2, 3)) if scores.ndim == 4 else scores


def dense_proba(model, images, flip=True, batch_size=64):
    """VGG's dense evaluation: softmax of the spatially averaged score map of the whole image,
    averaged with that of the flipped image when ``flip``: (N, K)."""
    dense = _fully_convolutional(model)
    p = softmax(dense_scores(dense, images, batch_size))
    if flip:
        p = (p + softmax(dense_scores(dense, hflip(images), batch_size))) / 2
    return p


def multiscale_proba(model, images, scales, crop_size=None, flip=True, batch_size=64):
    """Average the posteriors over several test scales Q (VGG's multi-scale evaluation, §3.3): each
    image resized so that its shorter side is Q, then evaluated densely (``crop_size=None``) or by
    its centre S×S crop (+ flip). VGG: Q ∈ {S−32, S, S+32} for a fixed training scale S."""
    total = 0
    for q in scales:
        scaled = resize(images, q)
        if crop_size is None:
            total = total + dense_proba(model, scaled, flip, batch_size)
        else:
            crop = center_crop(scaled, crop_size)
            views = [crop, hflip(crop)] if flip else [crop]
            total = total + _average_views(model, views, batch_size)
    return total / len(scales)


def ensemble_proba(models, images, protocol="center", **options):
    """Average the class probabilities of several models, each under ``protocol`` (softmax
    averaging, as the AlexNet and VGG ensembles): (N, K)."""
    models = list(models)
    if not models:
        raise ValueError("ensemble_proba: got no models")
    return sum(protocol_proba(m, images, protocol, **options) for m in models) / len(models)


def protocol_proba(model, images, protocol="center", crop_size=None, scales=None, flip=True, batch_size=64):
    """Class probabilities (N, K) of ``images`` under one of ``PROTOCOLS``.

    crop_size  S for "center" and "10crop" (default: the images' size minus 1/8, AlexNet's 224/256);
               for "multiscale", centre crops of this size instead of dense evaluation
    scales     the test scales Q for "multiscale" (default: the shorter side ×(7/8, 1, 9/8))
    """
    H, W = images.shape[2:]
    if protocol == "center":
        return predict_proba(model, center_crop(images, crop_size or min(H, W)), batch_size)
    if protocol == "10crop":
        return _average_views(model, ten_crop(images, crop_size or (min(H, W) * 7) // 8), batch_size)
    if protocol == "dense":
        return dense_proba(model, images, flip, batch_size)
    if protocol == "multiscale":
        side = min(H, W)
        scales = scales or [int(round(side * 7 / 8)), side, int(round(side * 9 / 8))]
        return multiscale_proba(model, images, scales, crop_size, flip, batch_size)
    raise ValueError(f"unknown evaluation protocol {protocol!r}; expected one of {PROTOCOLS}")


# ---------------------------------------------------------------- confusion matrix --------------

def confusion_matrix(predictions, targets, num_classes):
    """counts[i, j] = number of images of true class i predicted as class j: (K, K) int64.

    predictions  predicted classes (N,), or scores (N, K) (their argmax is taken)
    targets      true classes (N,)
    """
    predictions = backend.as_numpy(predictions)
    targets = backend.as_numpy(targets)
    if predictions.ndim == 2:
        predictions = predictions.argmax(axis=1)
    if predictions.shape != targets.shape:
        raise ValueError(f"confusion_matrix: {predictions.shape[0]} predictions for {targets.shape[0]} targets")
    pairs = targets.astype(np.int64) * num_classes + predictions.astype(np.int64)    # row-major cell index
    return np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
