"""The ``minicnn`` command (also ``python -m minicnn``).

    minicnn train [MODEL] [--dataset fashion-mnist-mini|fashion-mnist|mnist|cifar10] [--epochs N]
                  [--batch-size B] [--lr LR] [--optimizer sgd|rmsprop|adam]
                  [--schedule cosine|step|multistep|exponential|plateau] [--warmup EPOCHS]
                  [--label-smoothing EPS] [--mixup ALPHA] [--clip NORM] [--ema [DECAY]] [--amp]
                  [--device cpu|cuda [--tf32]] [--threads N] [--resume CHECKPOINT] [--out DIR]
                  [--distributed [--scale-lr] [--sync-bn]]
    minicnn evaluate CHECKPOINT [--protocol center|10crop|dense|multiscale] [--threads N]
    minicnn summary MODEL [--input-shape C,H,W]
    minicnn gradcheck MODEL

``minicnn train`` with no arguments trains ``resnet8`` — the paper's CIFAR ResNet (6n + 2 layers) with
n = 1: a 3×3 stem and three stages of one basic block with 16, 32 and 64 channels — on the bundled mini
Fashion-MNIST (10,000 real training and 2,000 real test images, shipped in the package) with SGD +
Nesterov momentum, no bias decay, a one-epoch linear warm-up then cosine decay per batch, no augmentation
(``--augment`` adds random crops and flips, which pay only on longer runs). It ends with a line such as
``test accuracy: 88.8%`` (88.1–88.8 % measured: the thread count changes the rounding;
benchmarks/README.md, "Training (minicnn train)") and leaves in ``--out`` (default ``runs/<model>``):
``checkpoint.npz`` (resume with ``--resume``), ``history.json``, ``curves.png``, ``confusion.png`` and
``model.npz`` (the weights). ``--threads N`` sets minicnn's CPU threads (``minicnn.set_num_threads``)
and the BLAS library's (threadpoolctl); the default is one per core for both.

MODEL is ``resnet8``, ``cnn`` or ``mlp`` (defined here, for the quick runs) or any name of
``minicnn.models.list_models()``, built with ``small_input=True`` for 28×28 / 32×32 images; a network
that cannot run on 28×28 (VGG's five pools) gets the images zero-padded to 32×32 (papers.md §9).

Data parallelism: ``mpiexec -n W minicnn train ... --distributed`` trains on W processes (cores, GPUs,
machines), each on --batch-size examples of every step (W·batch in all); only rank 0 prints and writes
files; ``--scale-lr`` multiplies the lr by W (the linear scaling rule); ``--sync-bn`` computes batch-norm
statistics over the global batch. A checkpoint resumes in any number of processes with the same global
batch and lr. See docs/distributed.md.

Bad arguments get a one-line error and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib.util
import inspect
import math
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "resnet8"


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


# ---- the small networks of the quick runs -----------------------------------------------------------

def resnet8(num_classes=10, in_channels=1, width=16):
    """ResNet-8: the paper's CIFAR ResNet (6n + 2 layers) with n = 1 — 3×3 stem (width), one basic block
    per stage on width·(1, 2, 4) channels (28 → 14 → 7 px), global average pool, fc. No zero-γ: on this
    8-epoch run it cost 2 points (lessons/10_bag_of_tricks.py shows why short schedules suffer)."""
    from .models.resnet import BasicBlock, ResNet
    return ResNet(BasicBlock, (1, 1, 1), (width, 2 * width, 4 * width), num_classes, in_channels,
                  small_input=True, name="ResNet-8")


def cnn(num_classes=10, in_channels=1, input_size=28):
    """A small VGG-style network: two 3×3 conv + BN + ReLU + 2×2 max-pool stages, then a classifier."""
    from . import nn
    side = input_size // 4
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * side * side, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, num_classes))


def mlp(num_classes=10, in_channels=1, input_size=28):
    """784 → 256 → 10 with ReLU (for 28×28×1 input)."""
    from . import nn
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * input_size * input_size, 256), nn.ReLU(),
                         nn.Linear(256, num_classes))


LOCAL_MODELS = {"resnet8": resnet8, "cnn": cnn, "mlp": mlp}


def model_names():
    from . import models
    return sorted(set(LOCAL_MODELS) | set(models.list_models()))


def build_model(name, num_classes, in_channels, input_size, small_input=True, tiny=False, width=1.0):
    """(model, the keyword arguments it was built with). ``width`` multiplies every layer's channels (the
    constructor's ``width_mult``, or its base ``width``); ``tiny``: the narrowest network (gradient checks)."""
    from . import models
    constructor = LOCAL_MODELS.get(name)
    if constructor is None:
        if name not in models.list_models():
            close = difflib.get_close_matches(name, model_names(), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise CommandError(f"unknown model {name!r}{hint} (`minicnn summary --list` lists them all)")
        constructor = models.registry._MODELS[name]
    accepted = inspect.signature(constructor).parameters
    wanted = {"num_classes": num_classes, "in_channels": in_channels, "small_input": small_input,
              "input_size": input_size if small_input else None}
    if tiny:
        wanted.update(width=4, width_mult=1 / 16)
    elif width != 1.0:
        if "width" not in accepted and "width_mult" not in accepted:
            raise CommandError(f"{name} has no width option; --width works with resnet8 and the registered models")
        base = accepted["width"].default if "width" in accepted else None
        wanted.update(width_mult=width, width=max(1, round(base * width)) if base else None)
    kwargs = {k: v for k, v in wanted.items() if k in accepted and v is not None}
    return constructor(**kwargs), kwargs


def rebuild_model(name, kwargs):
    """The model ``build_model`` made, from the name and keyword arguments saved in a checkpoint."""
    from . import models
    constructor = LOCAL_MODELS.get(name) or models.registry._MODELS.get(name)
    if constructor is None:
        raise CommandError(f"the checkpoint holds a {name!r}, which this version of minicnn does not know")
    return constructor(**kwargs)


def fit_input_size(model, in_channels, size, name):
    """The image size ``model`` runs on: ``size``, or 32 when 28×28 is too small (VGG's five pools)."""
    import minicnn
    from .models import InputSizeError
    candidates = [size, 32] if size == 28 else [size]
    dtype = next(iter(model.parameters())).dtype
    was_training = model.training
    model.eval()
    try:
        for s in candidates:
            try:
                with minicnn.no_grad():
                    model(minicnn.Tensor(np.zeros((2, in_channels, s, s), dtype)))
                return s
            except (InputSizeError, ValueError) as error:
                problem = error
    finally:
        model.train(was_training)
    raise CommandError(f"{name} cannot run on {size}×{size} images: {problem}")


# ---- data sets --------------------------------------------------------------------------------------

@dataclass
class DatasetSpec:
    loader: str          # function of minicnn.data
    mean: tuple          # per-channel mean and std of pixel/255 on the training split
    std: tuple
    flip: bool           # horizontal flips are a valid augmentation (not for digits)
    pad: int             # random-crop padding of the training augmentation
    names: str = "CLASSES"     # the class names in minicnn.data (for the confusion matrix)
    classes: int = 10


DATASETS = {
    "fashion-mnist-mini": DatasetSpec("fashion_mnist_mini", (0.2860,), (0.3530,), True, 2),
    "fashion-mnist": DatasetSpec("fashion_mnist", (0.2860,), (0.3530,), True, 2),
    "mnist": DatasetSpec("mnist", (0.1307,), (0.3081,), False, 2, "MNIST_CLASSES"),
    "cifar10": DatasetSpec("cifar10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), True, 4, "CIFAR10_CLASSES"),
}


def load_dataset(name, download=False, limit=None, train=True, test=True, progress=True):
    """(x_train, y_train, x_test, y_test): uint8 images as the data set stores them, int64 labels (None for
    a split not asked for), each cut to its first ``limit`` examples."""
    from . import data
    spec = DATASETS[name]
    function = getattr(data, spec.loader)
    if name == "fashion-mnist-mini":
        arrays = function()
    else:
        arrays = (function(train=True, download=download, progress=progress) if train else (None, None)) + \
                 (function(train=False, download=download, progress=progress) if test else (None, None))
    return tuple(None if a is None else a[:limit] for a in arrays)


def _class_names(dataset):
    from . import data
    return getattr(data, DATASETS[dataset].names, None)


def make_transform(spec, size, augment):
    """uint8 batch -> normalised float32 (N, C, S, S) (minicnn.data.transforms): zero-padded to the network's
    input size S, and for training a random crop of the image padded by ``spec.pad`` more pixels and a random
    horizontal flip. Normalising last makes the padding the data set's black."""
    from .data import transforms as T
    steps = [T.ToFloat()]
    if augment:
        steps.append(_PadTo(size, extra=spec.pad))
        steps.append(T.RandomCrop(size))
        if spec.flip:
            steps.append(T.RandomHorizontalFlip())
    else:
        steps.append(_PadTo(size))
    return T.Compose(steps + [T.Normalize(spec.mean, spec.std)])


class _PadTo:
    """Zero-pad (N, C, H, W) images to size + 2·extra (28×28 to 32×32 for VGG; + the random-crop margin)."""

    def __init__(self, size, extra=0):
        self.size, self.extra = size, extra

    def __call__(self, images, rng=None):
        from .data.transforms import Pad
        border = (self.size - images.shape[2]) // 2 + self.extra
        return Pad(border)(images) if border else images

    def __repr__(self):
        return f"PadTo({self.size}, extra={self.extra})"


# ---- argument parsing -------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CommandError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _number(kind, minimum=None, strict=True, maximum=None):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a{'n' if kind is int else ''} {kind.__name__}, "
                                             f"got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if minimum is not None and (value <= minimum if strict else value < minimum):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '≥'} {minimum}, got {text}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be ≤ {maximum}, got {text}")
        return value
    return parse


def _shape(text):
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C,H,W such as 3,224,224, got {text!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected three positive sizes C,H,W, got {text!r}")
    return shape


OPTIMIZERS = ("sgd", "rmsprop", "adam")
SCHEDULES = ("cosine", "step", "multistep", "exponential", "plateau", "constant")
DEFAULT_LR = {"sgd": 0.1, "rmsprop": 0.01, "adam": 1e-3}


def build_parser():
    parser = _Parser(prog="minicnn", description="Learn the classic CNNs by building them.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a network (default: resnet8 on the bundled mini Fashion-MNIST)")
    train.add_argument("model", nargs="?", default=None, metavar="MODEL",
                       help=f"network to train (default: {DEFAULT_MODEL}); see `minicnn summary --list`")
    train.add_argument("--width", type=_number(float, 0), default=1.0,
                       help="channel width multiplier of the network (e.g. 0.25 for a fast narrow VGG or Inception)")
    train.add_argument("--dataset", choices=sorted(DATASETS), default="fashion-mnist-mini")
    train.add_argument("--download", action="store_true", help="download the data set if it is not on disk")
    train.add_argument("--epochs", type=_number(int, 0), default=None, help="number of epochs (default: 8)")
    train.add_argument("--batch-size", type=_number(int, 0), default=64)
    train.add_argument("--lr", type=_number(float, 0), default=None,
                       help="peak learning rate (default: sgd 0.1, rmsprop 0.01, adam 0.001)")
    train.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd",
                       help="sgd: Nesterov momentum 0.9; rmsprop: TensorFlow's form (Inception-v3); adam")
    train.add_argument("--momentum", type=_number(float, 0, strict=False, maximum=1), default=0.9)
    train.add_argument("--weight-decay", type=_number(float, 0, strict=False), default=5e-4,
                       help="L2 weight decay on conv and fc weights only (no bias/BN decay)")
    train.add_argument("--schedule", choices=SCHEDULES, default="cosine",
                       help="cosine (per batch), step (÷10 every third of the run), multistep (÷10 at 1/2 "
                            "and 3/4), exponential (×0.94 every 2 epochs), plateau (÷10 when the test loss "
                            "stalls), constant")
    train.add_argument("--warmup", type=_number(float, 0, strict=False), default=1.0,
                       help="epochs of linear warm-up (default: 1; 0 turns it off)")
    train.add_argument("--label-smoothing", type=_number(float, 0, strict=False, maximum=1), default=0.0,
                       metavar="EPS", help="label smoothing ε (the papers: 0.1)")
    train.add_argument("--mixup", type=_number(float, 0, strict=False), default=0.0, metavar="ALPHA",
                       help="mixup α (Bag of Tricks: 0.2); 0 = off")
    train.add_argument("--clip", type=_number(float, 0), default=None, metavar="NORM",
                       help="clip the global gradient norm (Inception-v3: 2.0)")
    train.add_argument("--ema", type=_number(float, 0, maximum=0.999999), nargs="?", const=0.9999, default=None,
                       metavar="DECAY", help="evaluate with a moving average of the weights (default decay 0.9999)")
    train.add_argument("--amp", action="store_true",
                       help="mixed precision: float16 compute, float32 master weights, dynamic loss scaling")
    train.add_argument("--augment", action=argparse.BooleanOptionalAction, default=False,
                       help="random crops of the padded image and horizontal flips (default off: the default "
                            "8-epoch run underfits, and measured 86.9%% with them against 88.8%% without)")
    train.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    train.add_argument("--tf32", action="store_true",
                       help="GPU: float32 matrix products on TensorFloat-32 tensor cores "
                            "(minicnn.set_float32_matmul_precision('high')); default: full float32")
    train.add_argument("--threads", type=_number(int, 0), default=None, metavar="N", help=THREADS_HELP)
    train.add_argument("--keep-cores-awake", action="store_true",
                       help="keep the cores from idling between minicnn's parallel regions, as OpenMP's spin-wait "
                            "does (minicnn.parallel.keep_cores_awake: one idle-priority busy process per thread; "
                            "helps on virtual machines, costs power)")
    train.add_argument("--keep-freed-memory", action=argparse.BooleanOptionalAction, default=True,
                       help=KEEP_FREED_MEMORY_HELP)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--limit", type=_number(int, 0), default=None,
                       help="use only the first N training and N test images (quick runs)")
    train.add_argument("--resume", type=Path, default=None, metavar="CHECKPOINT",
                       help="continue the run saved in CHECKPOINT (its settings are used; --epochs may extend it)")
    train.add_argument("--out", type=Path, default=None, help="output directory (default: runs/<model>)")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.add_argument("--distributed", action="store_true",
                       help="data-parallel training over the W processes of `mpiexec -n W` (needs mpi4py: pip "
                            "install \"minicnn[distributed]\"); each takes --batch-size examples of every step")
    train.add_argument("--scale-lr", action="store_true",
                       help="linear scaling rule: multiply --lr by W, as the global batch is W times larger")
    train.add_argument("--sync-bn", action="store_true",
                       help="synchronised batch norm: statistics over the global batch of all W processes")

    evaluate = commands.add_parser("evaluate", help="evaluate a checkpoint with a test-time protocol")
    evaluate.add_argument("checkpoint", type=Path, metavar="CHECKPOINT")
    evaluate.add_argument("--protocol", choices=("center", "10crop", "dense", "multiscale"), default="center")
    evaluate.add_argument("--limit", type=_number(int, 0), default=None, help="use only the first N test images")
    evaluate.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    evaluate.add_argument("--threads", type=_number(int, 0), default=None, metavar="N", help=THREADS_HELP)
    evaluate.add_argument("--keep-freed-memory", action=argparse.BooleanOptionalAction, default=True,
                          help=KEEP_FREED_MEMORY_HELP)
    evaluate.add_argument("--download", action="store_true")

    summary = commands.add_parser("summary", help="layers, output shapes, parameters and multiply-adds")
    summary.add_argument("model", nargs="?", metavar="MODEL")
    summary.add_argument("--input-shape", type=_shape, default=None, metavar="C,H,W",
                         help="default: 3,224,224 (299 for inception_v3, 227 for alexnet_paper, 32 for the CIFAR "
                              "ResNets, 1,28,28 for resnet8/cnn/mlp); H ≤ 64 builds the small-input variant")
    summary.add_argument("--num-classes", type=_number(int, 0), default=None)
    summary.add_argument("--list", action="store_true", help="list the model names")

    gradcheck = commands.add_parser("gradcheck", help="directional float64 gradient check of a tiny instance")
    gradcheck.add_argument("model", metavar="MODEL")
    gradcheck.add_argument("--directions", type=_number(int, 0), default=3)
    gradcheck.add_argument("--seed", type=int, default=0)
    return parser


# ---- train ------------------------------------------------------------------------------------------

TRAINING_SETTINGS = ("model", "width", "dataset", "batch_size", "lr", "optimizer", "momentum", "weight_decay",
                     "schedule", "warmup", "label_smoothing", "mixup", "clip", "ema", "amp", "augment", "seed", "limit",
                     "epochs", "scale_lr", "sync_bn")


def make_optimizer(args, model):
    from . import optim
    decay = [p for p in model.parameters() if p.ndim > 1]         # conv and fc weights
    no_decay = [p for p in model.parameters() if p.ndim <= 1]     # biases, BN γ and β (Bag of Tricks §3.1)
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if args.optimizer == "sgd":
        return optim.SGD(groups, lr=args.lr, momentum=args.momentum, nesterov=args.momentum > 0)
    if args.optimizer == "rmsprop":
        return optim.RMSprop.tensorflow(groups, lr=args.lr, momentum=args.momentum)
    return optim.Adam(groups, lr=args.lr)


def make_scheduler(args, optimizer, steps_per_epoch):
    """(scheduler, "step" or "epoch"). Every schedule but plateau runs per batch, after a linear warm-up."""
    from .optim import lr_scheduler as S
    total = args.epochs * steps_per_epoch
    if args.schedule == "plateau":
        plateau = S.ReduceLROnPlateau(optimizer, factor=0.1, patience=2)
        warmup = math.ceil(args.warmup)
        return (S.LinearWarmup(optimizer, warmup, after=plateau) if warmup else plateau), "epoch"
    warmup = min(int(round(args.warmup * steps_per_epoch)), max(total - 1, 0))
    rest = max(total - warmup, 1)
    if args.schedule == "cosine":
        after = S.CosineAnnealingLR(optimizer, T_max=rest)
    elif args.schedule == "step":
        after = S.StepLR(optimizer, step_size=max(rest // 3, 1), gamma=0.1)
    elif args.schedule == "multistep":
        after = S.MultiStepLR(optimizer, milestones=[max(rest // 2, 1), max(3 * rest // 4, 1)], gamma=0.1)
    elif args.schedule == "exponential":
        after = S.ExponentialLR(optimizer, gamma=0.94 ** (1 / (2 * steps_per_epoch)))
    else:
        after = None
    if warmup:
        return S.LinearWarmup(optimizer, warmup, after=after), "step"
    return after, "step"


def _read_checkpoint(path):
    """The training checkpoint at ``path``; data-parallel: rank 0 reads it and sends it to every rank."""
    from . import distributed
    from .training import load_checkpoint
    return distributed.broadcast_object(load_checkpoint(path) if distributed.is_main_process() else None)


def _resumed_args(args, state, world_size=1):
    """The settings saved in the checkpoint ``state``, with --epochs, --out, --device and --no-progress from the
    command. A run resumed in a different number of processes keeps its global batch and learning rate."""
    saved = state.get("config", {}).get("args")
    if not saved:
        raise CommandError(f"{args.resume} holds no command-line settings to resume from")
    merged = argparse.Namespace(**{**vars(args), **{k: saved[k] for k in TRAINING_SETTINGS if k in saved}})
    if args.model not in (None, saved["model"]):
        raise CommandError(f"{args.resume} was trained as {saved['model']!r}, not {args.model!r}")
    merged.epochs = args.epochs if args.epochs is not None else saved["epochs"]
    merged.out = args.out if args.out is not None else args.resume.parent
    saved_world_size = state["config"].get("world_size", 1)
    if saved_world_size != world_size:
        global_batch = merged.batch_size * saved_world_size
        if global_batch % world_size:
            raise CommandError(f"{args.resume} was trained with a global batch of {global_batch} ({saved_world_size} "
                               f"× {merged.batch_size}), which {world_size} processes cannot share equally")
        merged.batch_size = global_batch // world_size
        if merged.scale_lr:                 # keep the lr the run was using, now written unscaled
            merged.lr, merged.scale_lr = merged.lr * saved_world_size, False
    return merged


def train(args):
    import minicnn
    from . import backend
    from . import distributed as dist
    from .training import Recipe, Trainer

    rank, world_size = dist.get_rank(), dist.get_world_size()
    say = print if rank == 0 else _silent              # only rank 0 prints (and writes files)
    state = None
    if args.resume is not None:
        state = _read_checkpoint(args.resume)
        args = _resumed_args(args, state, world_size)
    args.model = args.model or DEFAULT_MODEL
    args.epochs = args.epochs if args.epochs is not None else 8
    args.lr = args.lr if args.lr is not None else DEFAULT_LR[args.optimizer]
    args.out = args.out if args.out is not None else Path("runs") / args.model
    if args.device == "cuda" and not backend.gpu_available():
        raise CommandError("--device cuda needs CuPy and a CUDA GPU (see README.md, GPU)")

    from .data import DataLoader
    from .data.transforms import to_nchw
    spec = DATASETS[args.dataset]
    first_here = dist.get_local_rank() == 0   # one rank per machine downloads; the others then find the files
    if not first_here:
        dist.barrier()
    x_train, y_train, x_test, y_test = load_dataset(args.dataset, args.download, args.limit,
                                                    progress=not args.no_progress and rank == 0)
    if first_here:
        dist.barrier()
    if args.batch_size * world_size > len(x_train):
        raise CommandError(f"--batch-size {args.batch_size}" + (f" × {world_size} processes" if world_size > 1 else "")
                           + f" is larger than the {len(x_train)} training images")
    _, in_channels, size, _ = to_nchw(x_train[:1]).shape
    classes = spec.classes

    minicnn.manual_seed(args.seed)
    model, model_kwargs = build_model(args.model, classes, in_channels, size, width=args.width)
    input_size = fit_input_size(model, in_channels, size, args.model)
    if args.sync_bn:
        dist.convert_sync_batchnorm(model)
    if args.device == "cuda":
        model.to("cuda")
    typed_lr = args.lr
    if args.scale_lr:
        from .optim import linear_scaling_rule
        args.lr = linear_scaling_rule(typed_lr, world_size * args.batch_size, args.batch_size)
    lr, optimizer = args.lr, make_optimizer(args, model)
    args.lr = typed_lr                      # the settings saved in the checkpoint are the ones typed
    train_loader = DataLoader((x_train, y_train), args.batch_size, shuffle=True, drop_last=True, seed=args.seed,
                              transform=make_transform(spec, input_size, args.augment), device=args.device,
                              num_replicas=world_size, rank=rank)
    test_loader = DataLoader((x_test, y_test), 500, transform=make_transform(spec, input_size, False),
                             device=args.device)
    scheduler, interval = make_scheduler(args, optimizer, len(train_loader))
    recipe = Recipe(label_smoothing=args.label_smoothing, mixup_alpha=args.mixup, clip_grad_norm=args.clip,
                    ema_decay=args.ema, amp=args.amp)
    config = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                       if k in TRAINING_SETTINGS},
              "model_kwargs": model_kwargs, "input_size": input_size, "classes": classes, "world_size": world_size}
    can_plot = importlib.util.find_spec("matplotlib") is not None
    trained = dist.DistributedDataParallel(model) if args.distributed else model   # broadcasts rank 0's weights
    trainer = Trainer(trained, optimizer, train_loader, test_loader, recipe=recipe, scheduler=scheduler,
                      scheduler_interval=interval, num_classes=classes, out_dir=args.out, plot=can_plot,
                      seed=args.seed, progress=not args.no_progress, config=config)
    if state is not None:
        trainer.load_state_dict(state)
        say(f"resuming {args.model} from epoch {trainer.epoch} of {args.resume}")
    from .models import count_parameters
    scaled = f" (= {args.lr:g} × {world_size} processes, linear scaling rule)" if args.scale_lr else ""
    batch = f"batch {args.batch_size}" + (f" × {world_size} processes" if world_size > 1 else "")
    say(f"training {args.model} ({count_parameters(model):,} parameters) on {args.dataset}: {len(x_train)} train / "
        f"{len(x_test)} test images of {in_channels}×{input_size}×{input_size}, {args.epochs} epochs, "
        f"{args.optimizer} lr {lr:g}{scaled}, {args.schedule} schedule, {batch}"
        + (", synchronised batch norm" if args.sync_bn else ""))
    if args.amp and args.device == "cpu":
        say("note: --amp on the CPU is slower (NumPy has no float16 matrix multiply); it pays off with --device cuda")
    if args.tf32 and args.device == "cpu":
        say("note: --tf32 changes nothing on the CPU (NumPy multiplies float32 in float32); it is for --device cuda")
    precision = minicnn.get_float32_matmul_precision()
    if args.tf32 and args.device == "cuda":
        minicnn.set_float32_matmul_precision("high")
    started = time.perf_counter()
    try:
        trainer.fit(args.epochs)
    finally:
        minicnn.set_float32_matmul_precision(precision)
    result = trainer.last_validation or trainer.validate(test_loader)     # the last epoch's test evaluation
    if rank == 0:
        _finish_training(trainer, result, args, can_plot)
    say(f"time: {time.perf_counter() - started:.0f} s")
    say(f"test accuracy: {result['acc']:.1%}")
    return result["acc"]


def _silent(*args, **kwargs):
    """print() for the ranks other than 0."""


def train_distributed(args):
    """``minicnn train --distributed``: join the MPI job, train, and make any failure stop every rank."""
    from . import backend
    from . import distributed as dist
    if args.device == "cuda" and not backend.gpu_available():
        raise CommandError("--device cuda needs CuPy and a CUDA GPU (see README.md, GPU)")
    try:
        group = dist.init_process_group(device=args.device)
    except ImportError as error:
        raise CommandError(str(error)) from None
    try:
        train(args)
    except BaseException as error:          # noqa: BLE001 — one rank's failure must stop them all
        if group.world_size == 1:
            raise
        if isinstance(error, KeyboardInterrupt):
            dist.abort("minicnn: interrupted", 130)
        if _user_facing(error):
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            dist.abort(f"minicnn: error: {message}", 2)
        text = "".join(traceback.format_exception(error)).rstrip()       # a bug: keep its traceback
        dist.abort(f"minicnn: unexpected error:\n{text}", 1)


def _finish_training(trainer, result, args, can_plot):
    """Write model.npz (the evaluation weights: EMA when on) and confusion.png; say where everything is."""
    import contextlib

    import minicnn
    from .training import confusion_matrix
    args.out.mkdir(parents=True, exist_ok=True)
    with trainer.ema.average_parameters(trainer.model) if trainer.ema else contextlib.nullcontext():
        minicnn.save(trainer.model.state_dict(), args.out / "model.npz")
    if can_plot:
        from .viz import plot_confusion_matrix
        counts = confusion_matrix(result["predictions"], result["labels"], trainer.num_classes)
        plot_confusion_matrix(counts, args.out / "confusion.png", classes=_class_names(args.dataset),
                              title=f"{args.model} on {args.dataset}")
    files = ["checkpoint.npz", "model.npz", "history.json"] + (["curves.png", "confusion.png"] if can_plot else [])
    print(f"written to {args.out}: {', '.join(files)}")


# ---- evaluate ---------------------------------------------------------------------------------------

def evaluate_checkpoint(args):
    import minicnn
    from .training import accuracy, confusion_matrix, load_checkpoint, protocol_proba
    state = load_checkpoint(args.checkpoint)
    config = state.get("config") or {}
    if "args" not in config:
        raise CommandError(f"{args.checkpoint} does not say which model it holds (no config)")
    saved = config["args"]
    model = rebuild_model(saved["model"], config["model_kwargs"])
    model.load_state_dict(state["model"])
    weights = "trained"
    if state.get("ema"):
        for name, p in model.named_parameters():
            p.data[...] = state["ema"]["shadow"][name]
        weights = "EMA"
    if args.device == "cuda":
        if not minicnn.backend.gpu_available():
            raise CommandError("--device cuda needs CuPy and a CUDA GPU")
        model.to("cuda")
    spec = DATASETS[saved["dataset"]]
    _, _, x_test, y_test = load_dataset(saved["dataset"], args.download, args.limit, train=False)
    y_test = np.asarray(y_test)
    S = config["input_size"]
    border = round(S / 14) if args.protocol in ("10crop", "dense") else 0     # 28 -> 32, as 224 -> 256
    images = make_transform(spec, S + 2 * border, augment=False)(x_test)
    scales = None
    if args.protocol == "multiscale":
        scales = [round(S * 7 / 8), S, round(S * 9 / 8)]
        try:
            fit_input_size(model, images.shape[1], scales[0], saved["model"])
        except CommandError:
            scales = [S, round(S * 9 / 8), round(S * 5 / 4)]     # networks that cannot shrink go upward
    try:
        crop = S if args.protocol in ("center", "10crop") else None       # multiscale: dense at every scale
        p = minicnn.backend.as_numpy(protocol_proba(model, images, args.protocol, crop_size=crop, scales=scales))
    except ValueError as error:
        raise CommandError(f"protocol {args.protocol} cannot run {saved['model']} on {images.shape[2]}×"
                           f"{images.shape[3]} images (dense and multiscale need a network that ends in global "
                           f"pooling, or a VGG/AlexNet head to convert): {error}") from None
    top1, top5 = accuracy(p, y_test, (1, 5))
    print(f"{saved['model']} ({weights} weights, epoch {state['epoch']}) on {len(y_test)} {saved['dataset']} test "
          f"images, protocol {args.protocol}{f' scales {scales}' if scales else ''}")
    print(f"top-1 error: {1 - top1:.2%}   top-5 error: {1 - top5:.2%}")
    if importlib.util.find_spec("matplotlib") is not None:
        from .viz import plot_confusion_matrix
        path = args.checkpoint.parent / f"confusion_{args.protocol}.png"
        plot_confusion_matrix(confusion_matrix(p, y_test, p.shape[1]), path, classes=_class_names(saved["dataset"]),
                              title=f"{saved['model']}, {args.protocol}")
        print(f"confusion matrix: {path}")
    print(f"test accuracy: {top1:.1%}")
    return top1


# ---- summary and gradcheck ----------------------------------------------------------------------------

def _default_input_shape(name):
    if name in LOCAL_MODELS:
        return (1, 28, 28)
    if name == "inception_v3":
        return (3, 299, 299)
    if name == "alexnet_paper":
        return (3, 227, 227)
    if name.startswith(("resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "plain", "se_resnet20")):
        return (3, 32, 32)
    return (3, 224, 224)


def summary(args):
    from . import models
    if args.list or args.model is None:
        print("\n".join(model_names()))
        return 0
    C, H, W = args.input_shape or _default_input_shape(args.model)
    small = H <= 64
    model, _ = build_model(args.model, args.num_classes or (10 if small else 1000), C, H, small_input=small)
    models.summary(model, (C, H, W))
    return 0


def _move_off_the_kinks(model, rng):
    """Give the constant-initialised 1-D parameters (BN γ = 1 or 0, β = 0, biases 0) random values.

    With zero-γ and β = 0 a residual branch outputs exactly 0, so wherever the shortcut is 0 too (after a
    ReLU, half the values) the block's ReLU sits exactly on its kink: the function is not differentiable
    there, and finite differences disagree with any subgradient. Random γ ∈ [0.5, 1.5], β ~ N(0, 0.1²)
    keep every ReLU input away from 0 (almost surely), so the check tests the backward code only."""
    for name, p in model.named_parameters():
        if p.ndim == 1:
            p.data[...] = (rng.uniform(0.5, 1.5, p.shape) if name.endswith("weight")
                           else rng.normal(0.0, 0.1, p.shape))


def gradcheck_model(args):
    import minicnn
    from .gradcheck import gradcheck
    with minicnn.default_dtype(np.float64):
        minicnn.manual_seed(args.seed)
        model, kwargs = build_model(args.model, 3, 1, 28, tiny=True)
        model.double()
        _move_off_the_kinks(model, np.random.default_rng(args.seed))
        size = fit_input_size(model, 1, 28, args.model)
        x = minicnn.Tensor(np.random.default_rng(args.seed).standard_normal((2, 1, size, size)), requires_grad=True)

        def forward(x):
            minicnn.manual_seed(args.seed)        # the same dropout masks in every evaluation
            return model(x)

        started = time.perf_counter()
        result = gradcheck(forward, [x], params=list(model.named_parameters()), mode="directional",
                           directions=args.directions, raise_exception=False)
    from .models import count_parameters
    settings = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in kwargs.items())
    print(f"{args.model} ({settings}; {count_parameters(model):,} parameters), float64, input 2×1×{size}×{size}, "
          f"training mode, {time.perf_counter() - started:.1f} s")
    verdict = "passed" if result.ok else "FAILED"
    print(f"gradcheck (directional, {args.directions} random directions over the input and "
          f"{len(result.checked) - 1} parameter tensors) {verdict}: worst {result.worst_name} analytic="
          f"{result.analytic:.10g} numerical={result.numerical:.10g} relative error={result.relative_error:.3g}")
    return 0 if result.ok else 1


# ---- main -------------------------------------------------------------------------------------------

KEEP_FREED_MEMORY_HELP = ("glibc's malloc keeps freed memory for the next step instead of handing it back "
                          "to the kernel (minicnn.keep_freed_memory; default on: 26x fewer page faults and "
                          "~10%% faster resnet8 training in benchmarks/README.md; the process keeps its peak memory)")
THREADS_HELP = ("CPU threads: minicnn's own (minicnn.set_num_threads, which share out each convolution's "
                "batch) and the BLAS library's (default: one per core for both)")


@contextlib.contextmanager
def cpu_threads(n):
    """minicnn's threads and the BLAS library's (threadpoolctl) set to n for the block, both restored
    afterwards; n=None changes nothing."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    from . import parallel
    before = parallel.get_num_threads()
    parallel.set_num_threads(n)
    try:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
    finally:
        parallel.set_num_threads(before)


@contextlib.contextmanager
def cores_awake(enabled):
    """minicnn.parallel.keep_cores_awake for the block when enabled (turned off afterwards); else
    nothing changes (busy processes a caller started stay)."""
    if not enabled:
        yield
        return
    from . import parallel
    parallel.keep_cores_awake()
    try:
        yield
    finally:
        parallel.keep_cores_awake(False)


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
        if args.command in ("train", "evaluate") and args.keep_freed_memory:
            from .memory import keep_freed_memory
            keep_freed_memory()
        if args.command == "train":
            with cpu_threads(args.threads), cores_awake(args.keep_cores_awake):
                if args.distributed:
                    train_distributed(args)
                else:
                    train(args)
            return 0
        if args.command == "evaluate":
            with cpu_threads(args.threads):
                evaluate_checkpoint(args)
            return 0
        if args.command == "summary":
            return summary(args)
        return gradcheck_model(args)
    except KeyboardInterrupt:
        print("minicnn: interrupted", file=sys.stderr)
        return 130
    except Exception as error:                     # noqa: BLE001 — the point is: one line, no traceback
        if not _user_facing(error):
            raise
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"minicnn: error: {message}", file=sys.stderr)
        return 2


def _user_facing(error):
    """Errors caused by the arguments or the data, reported in one line; anything else is a bug and keeps
    its traceback."""
    from .training import CheckpointError, TrainingDiverged
    return isinstance(error, (CommandError, TrainingDiverged, CheckpointError, ValueError, OSError, MemoryError))


if __name__ == "__main__":
    sys.exit(main())
