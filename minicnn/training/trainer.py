"""The fit loop: ``Trainer(model, optimizer, train_loader, val_loader, recipe=Recipe(...)).fit(epochs)``.

One training step, with every trick of the papers that the ``Recipe`` turns on (all off by default):

    x, y = next batch                                   a DataLoader yields arrays
    x, q = mixup(x, y)                                  [mixup_alpha]     soft targets q (N, K)
    with float16 copies of the weights:                 [amp]             see amp.py
        out = model(x)                                  logits, or (logits, aux) for Inception
        loss = CE(logits, q; ε)                         [label_smoothing] ε inside the target
             + 0.4 · CE(aux, q; ε)                      [aux_weight]      when the model returns aux
             + T²·KL(teacher/T ‖ student/T)             [teacher]         knowledge distillation
        backward of S · loss                            S = loss scale (1 without amp)
    grads /= S, check for inf/NaN                       [amp]             overflow: skip the step
    clip the global gradient norm                       [clip_grad_norm]
    optimizer.step(); scheduler.step() per step         (or per epoch)
    EMA of the weights                                  [ema_decay]       used for evaluation

After every epoch: evaluation (top-1, top-5, loss; with the EMA weights when on), the epoch's record
in the history, a checkpoint (everything needed to resume bit for bit, see checkpoint.py), the
history as JSON, and the curves as PNG (``plot=True``). A loss that becomes NaN or inf stops training
with ``TrainingDiverged``; the checkpoint of the last finished epoch stays as it was.

Data parallelism: given a ``minicnn.distributed.DistributedDataParallel`` instead of the bare model, the
Trainer averages the gradients over the ranks right after backward (before the loss-scale check and
clipping, so that every rank takes the same decisions), sums the epoch's loss and accuracy over the
ranks, and lets only rank 0 print, show the progress bar and write the checkpoint, history and plots.
Checkpoints hold the bare model's state, so they resume in any number of processes. Every rank
evaluates the whole validation set (the same numbers everywhere, no communication).

Shape letters: N batch, C channels, H, W, K classes.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import backend
from .. import random as minicnn_random
from ..autograd import Tensor, no_grad
from ..distributed import DistributedDataParallel, all_reduce, broadcast_object
from ..functional.loss import cross_entropy, distillation_loss
from ..functional.math import astype
from .amp import GradScaler, cast_parameters
from .checkpoint import load_checkpoint, save_checkpoint
from .clipping import clip_grad_norm_
from .ema import ModelEMA
from .evaluation import evaluate
from .history import History
from .metrics import AverageMeter
from .mixup import mixup

__all__ = ["Recipe", "Trainer", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or inf; the message says where and which checkpoint is intact."""


@dataclass
class Recipe:
    """The training tricks of the five papers; the defaults turn them all off (plain cross-entropy).

    label_smoothing       ε; 0.1 in Inception-v3 and Bag of Tricks
    smoothing_convention  "pytorch" (ε/K, Inception-v3) or "k-1" (ε/(K−1), Bag of Tricks); see F.cross_entropy
    mixup_alpha           α of mixup's Beta(α, α); 0.2 in Bag of Tricks; 0 = off
    clip_grad_norm        max global gradient norm; 2.0 in Inception-v3; None = off
    aux_weight            weight of the auxiliary classifier's loss when the model returns (logits, aux);
                          0.4 (Inception-v3, TF-slim)
    distill_temperature   T of knowledge distillation (used when a teacher is given); 20 in Bag of Tricks
    distill_weight        weight of the distillation term (1: Bag of Tricks' sum of the two losses)
    ema_decay             decay of the parameter moving average used for evaluation; 0.9999 in
                          Inception-v3; None = off
    ema_warmup            TF's warm-up of the EMA decay, min(d, (1 + n)/(10 + n)) (see ema.py)
    amp                   mixed precision: float16 compute, float32 masters, dynamic loss scaling
    loss_scale            the initial loss scale S (2¹⁶)
    scale_growth_interval clean steps before S doubles (2000)
    """
    label_smoothing: float = 0.0
    smoothing_convention: str = "pytorch"
    mixup_alpha: float = 0.0
    clip_grad_norm: float | None = None
    aux_weight: float = 0.4
    distill_temperature: float = 20.0
    distill_weight: float = 1.0
    ema_decay: float | None = None
    ema_warmup: bool = True
    amp: bool = False
    loss_scale: float = 2.0 ** 16
    scale_growth_interval: int = 2000


class Trainer:
    """Train ``model`` with ``optimizer`` on ``train_loader``; evaluate on ``val_loader`` after each epoch.

    model               a Module, or a DistributedDataParallel wrapping one (data-parallel training; the
                        train loader then gives each rank its shard: DataLoader(..., num_replicas, rank))
    train_loader        an iterable of (images (N, C, H, W) float, labels (N,) int) arrays, re-iterable
                        once per epoch (minicnn.data.DataLoader); its ``state_dict``/``load_state_dict``
                        and ``set_epoch`` are used when it has them
    val_loader          the same for evaluation, or None
    recipe              a ``Recipe`` (the tricks); default: none
    scheduler           an lr scheduler (minicnn.optim.lr_scheduler) or None; ReduceLROnPlateau gets the
                        validation loss (the training loss without validation data)
    scheduler_interval  "epoch" (PyTorch's usual) or "step": ``scheduler.step()`` after every batch
                        (warm-up and cosine decay per iteration, as in Bag of Tricks)
    teacher             a trained model for knowledge distillation, or None (it runs in eval mode)
    num_classes         K, for mixup's one-hot targets; found from the model's last layer if None
    out_dir             where ``checkpoint.npz``, ``history.json`` (and ``curves.png``) go; None = nowhere
    plot                write the curves after every epoch (minicnn.viz; needs matplotlib)
    seed                seeds the trainer's own generator (mixup)
    progress            show a tqdm progress bar (loss, accuracy, images/s)
    config              a dict saved in the checkpoint to describe the run (for ``minicnn evaluate``)
    log                 where epoch summaries go (``print``)
    """

    CHECKPOINT, HISTORY, CURVES = "checkpoint.npz", "history.json", "curves.png"

    def __init__(self, model, optimizer, train_loader, val_loader=None, *, recipe=None, scheduler=None,
                 scheduler_interval="epoch", teacher=None, num_classes=None, out_dir=None, plot=False, seed=0,
                 progress=True, config=None, log=print):
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"Trainer: scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        self.ddp = model if isinstance(model, DistributedDataParallel) else None
        model = model.module if self.ddp is not None else model
        self.is_main = self.ddp is None or self.ddp.is_main       # the rank that prints and writes files
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.train_loader, self.val_loader = train_loader, val_loader
        self.recipe = recipe or Recipe()
        self.scheduler_interval, self.teacher = scheduler_interval, teacher
        self.num_classes = num_classes
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.plot, self.progress, self.config = plot, progress and self.is_main, dict(config or {})
        self.log = log if self.is_main else (lambda *args, **kwargs: None)
        self.rng = np.random.default_rng(seed)
        self.scaler = GradScaler(self.recipe.loss_scale, growth_interval=self.recipe.scale_growth_interval,
                                 enabled=self.recipe.amp)
        self.ema = (ModelEMA(model, self.recipe.ema_decay, self.recipe.ema_warmup)
                    if self.recipe.ema_decay is not None else None)
        self.history = History()
        self.epoch = 0                          # epochs completed
        self.last_validation = None             # evaluate()'s result after the last epoch (with predictions)
        if teacher is not None:
            teacher.eval()
        if self.recipe.mixup_alpha and self.num_classes is None:
            self.num_classes = _infer_num_classes(model)

    # ---- the loop ---------------------------------------------------------------------------------
    def fit(self, epochs):
        """Train until ``epochs`` epochs are complete (continuing from ``self.epoch`` after a resume);
        returns the History."""
        for epoch in range(self.epoch + 1, epochs + 1):
            record = {"epoch": epoch, **self.train_epoch(epoch, epochs)}
            if self.val_loader is not None:
                self.last_validation = self.validate()
                record.update({f"val_{k}": v for k, v in self.last_validation.items()
                               if k in ("loss", "acc", "top5")})
            self._scheduler_epoch_step(record)
            self.epoch = epoch
            self.history.append(record)
            self.log(_summary(record, epochs))
            if self.out_dir is not None and self.is_main:
                self.save()
        return self.history

    def train_epoch(self, epoch, epochs=None):
        """One pass over the training data; returns {"lr", "train_loss", "train_acc", "images_per_s", …}."""
        from tqdm import tqdm
        self.model.train()
        if hasattr(self.train_loader, "set_epoch"):
            self.train_loader.set_epoch(epoch - 1)
        loss_meter, correct, seen = AverageMeter(), 0, 0
        skipped_before = self.scaler.skipped_steps
        lr, lrs = self.optimizer.param_groups[0]["lr"], []
        total = len(self.train_loader) if hasattr(self.train_loader, "__len__") else None
        bar = tqdm(self.train_loader, total=total, desc=f"epoch {epoch}/{epochs or '?'}", unit="batch",
                   disable=not self.progress, leave=False, file=sys.stderr, dynamic_ncols=True)
        started = time.perf_counter()
        try:
            for step, (images, labels) in enumerate(bar, 1):
                lr = self.optimizer.param_groups[0]["lr"]
                lrs.append(float(lr))
                loss, logits, classes = self.train_step(images, labels, where=f"epoch {epoch}, step {step}")
                loss_meter.update(loss, len(classes))
                correct += int((backend.as_numpy(logits).argmax(axis=1) == backend.as_numpy(classes)).sum())
                seen += len(classes)
                bar.set_postfix(loss=f"{loss_meter.average:.3f}", acc=f"{correct / seen:.1%}",
                                img_s=f"{seen / (time.perf_counter() - started):.0f}", refresh=False)
        finally:
            bar.close()
        seconds = time.perf_counter() - started
        if self.ddp is not None:        # the epoch over all ranks: their losses and hits summed
            totals = all_reduce(np.array([loss_meter.total, loss_meter.count, correct, seen], np.float64),
                                group=self.ddp.group)
            loss_meter.total, loss_meter.count, correct, seen = float(totals[0]), *(int(t) for t in totals[1:])
        # The lr of each step, thinned to at most 50 per epoch: the curve of a per-step schedule (warm-up, cosine).
        every = max(1, math.ceil(len(lrs) / 50))
        return {"lr": float(lr), "lr_steps": lrs[::every], "train_loss": loss_meter.average, "train_acc": correct / max(seen, 1),
                "images_per_s": seen / seconds if seconds > 0 else float("nan"), "seconds": seconds,
                "skipped_steps": self.scaler.skipped_steps - skipped_before}

    def train_step(self, images, labels, where="this step"):
        """Forward, loss, backward and update on one batch. Returns the loss (a float), the logits and
        the class each image counts as for the training accuracy (with mixup: the larger share)."""
        recipe, model = self.recipe, self.model
        device = _device_of(model)
        images, labels = backend.to_device(images, device), backend.to_device(labels, device)
        targets = labels
        if recipe.mixup_alpha:
            images, targets, _ = mixup(images, labels, recipe.mixup_alpha, self.num_classes, self.rng)
        self.optimizer.zero_grad()
        precision = cast_parameters(model) if recipe.amp else contextlib.nullcontext()
        # In float16 an overflow is expected now and then (the loss scale probes the range): the
        # scaler detects it and skips the step, so NumPy's overflow warnings are silenced here.
        quiet = np.errstate(over="ignore", invalid="ignore") if recipe.amp else contextlib.nullcontext()
        with precision, quiet:
            x = images.astype(np.float16) if recipe.amp else images
            outputs = model(Tensor(x))
            loss = self.loss(outputs, targets, images)
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingDiverged(self._divergence_message(value, where))
            self.scaler.scale(loss).backward()
        if self.ddp is not None:
            self.ddp.all_reduce_gradients()             # mean over the ranks, before any decision on them
        self.scaler.unscale_(self.optimizer)            # float32 gradients / S (no-op without amp)
        if recipe.clip_grad_norm is not None and not self.scaler.found_inf:
            clip_grad_norm_(model.parameters(), recipe.clip_grad_norm)
        self.scaler.step(self.optimizer)                # skipped if the gradients overflowed
        stepped = not self.scaler.found_inf
        self.scaler.update()
        if stepped and self.ema is not None:
            self.ema.update(model)
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        hard_targets = targets.argmax(axis=1) if targets.ndim == 2 else targets   # mixup: the larger share
        return value, _main_logits(outputs).data, hard_targets

    def loss(self, outputs, targets, images):
        """The training loss of one batch (see the module docstring); computed in float32."""
        recipe = self.recipe
        options = dict(label_smoothing=recipe.label_smoothing, smoothing_convention=recipe.smoothing_convention)
        logits = _float32(_main_logits(outputs))
        loss = cross_entropy(logits, targets, **options)
        if isinstance(outputs, tuple) and len(outputs) > 1 and outputs[1] is not None and recipe.aux_weight:
            loss = loss + recipe.aux_weight * cross_entropy(_float32(outputs[1]), targets, **options)
        if self.teacher is not None:
            with no_grad():
                teacher_logits = _main_logits(self.teacher(Tensor(images)))
            loss = loss + recipe.distill_weight * distillation_loss(logits, teacher_logits,
                                                                    recipe.distill_temperature)
        return loss

    def validate(self, loader=None):
        """Loss, top-1 and top-5 on ``loader`` (default: the validation loader), with the EMA weights
        when the recipe has an EMA."""
        loader = self.val_loader if loader is None else loader
        with self.ema.average_parameters(self.model) if self.ema else contextlib.nullcontext():
            return evaluate(self.model, loader)

    def _scheduler_epoch_step(self, record):
        if self.scheduler is None or self.scheduler_interval != "epoch":
            return
        if _is_plateau(self.scheduler):
            self.scheduler.step(record.get("val_loss", record["train_loss"]))
        else:
            self.scheduler.step()

    def _divergence_message(self, value, where):
        lr = self.optimizer.param_groups[0]["lr"]
        if self.out_dir is not None and self.epoch > 0:
            kept = f"the checkpoint of epoch {self.epoch} ({self.out_dir / self.CHECKPOINT}) is intact"
        else:
            kept = "no checkpoint had been written yet"
        return (f"training stopped: the loss became {value} at {where} (lr {lr:.4g}); {kept}. "
                f"Try a smaller learning rate, warm-up or gradient clipping.")

    # ---- checkpoints ------------------------------------------------------------------------------
    def state_dict(self):
        """Everything a resumed run needs (see checkpoint.py)."""
        loader = self.train_loader
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": {"minicnn": minicnn_random.get_state(), "trainer": self.rng.bit_generator.state,
                    "loader": loader.state_dict() if hasattr(loader, "state_dict") else None},
            "history": self.history.state_dict(),
            "recipe": asdict(self.recipe),
            "config": self.config,
        }

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        minicnn_random.set_state(state["rng"]["minicnn"])
        self.rng.bit_generator.state = state["rng"]["trainer"]
        if state["rng"].get("loader") is not None and hasattr(self.train_loader, "load_state_dict"):
            self.train_loader.load_state_dict(state["rng"]["loader"])
        self.history.load_state_dict(state["history"])
        self.epoch = int(state["epoch"])

    def save(self):
        """Write the checkpoint, the history (and the curves) into ``out_dir``, each atomically. (``fit``
        calls it on rank 0 only.)"""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self.state_dict(), self.out_dir / self.CHECKPOINT)
        self.history.save(self.out_dir / self.HISTORY)
        if self.plot:
            from ..viz import plot_history
            plot_history(self.history, self.out_dir / self.CURVES)

    def resume(self, path):
        """Continue from a checkpoint: restores every state; ``fit(epochs)`` then trains the remaining
        epochs. Returns the number of epochs already done. Data-parallel: rank 0 reads the file and sends
        it to the others (no shared file system needed)."""
        if self.ddp is None:
            state = load_checkpoint(path)
        else:
            state = broadcast_object(load_checkpoint(path) if self.is_main else None, group=self.ddp.group)
        self.load_state_dict(state)
        return self.epoch


# ---- helpers ---------------------------------------------------------------------------------------

def _main_logits(outputs):
    return outputs[0] if isinstance(outputs, tuple) else outputs


def _float32(t):
    return t if t.dtype == np.float32 else astype(t, np.float32)


def _device_of(model):
    first = next(iter(model.parameters()), None)
    return "cpu" if first is None else first.device


def _infer_num_classes(model):
    last = [m for m in model.modules() if hasattr(m, "out_features")]
    if not last:
        raise ValueError("Trainer: cannot tell the number of classes from the model (no Linear layer); "
                         "pass num_classes=K")
    return last[-1].out_features


def _is_plateau(scheduler):
    """ReduceLROnPlateau, alone or after a LinearWarmup: its step() takes the validation metric."""
    from ..optim.lr_scheduler import ReduceLROnPlateau
    return isinstance(scheduler, ReduceLROnPlateau) or isinstance(getattr(scheduler, "after", None),
                                                                  ReduceLROnPlateau)


def _summary(record, epochs):
    text = (f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.4f} "
            f"acc {record['train_acc']:.1%}")
    if "val_loss" in record:
        text += f" | val loss {record['val_loss']:.4f} acc {record['val_acc']:.1%}"
        if "val_top5" in record:
            text += f" top-5 {record['val_top5']:.1%}"
    text += f" | lr {record['lr']:.4g} | {record['images_per_s']:.0f} img/s, {record['seconds']:.1f} s"
    if record.get("skipped_steps"):
        text += f" | {record['skipped_steps']} steps skipped (fp16 overflow)"
    return text
