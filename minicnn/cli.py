"""The ``minicnn`` command (also ``python -m minicnn``).

    minicnn train [--model mlp|cnn] [--epochs N] [--batch-size B] [--lr LR] [--seed S] [--out DIR]

trains a network on the bundled mini Fashion-MNIST (real images, 10k train / 2k test, shipped
inside the package, so it works offline) and ends with a line ``test accuracy: 88.4%``.
Bad arguments get a one-line error and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def build_parser():
    parser = argparse.ArgumentParser(prog="minicnn", description="Learn the classic CNNs by building them.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a network on the bundled mini Fashion-MNIST")
    train.add_argument("--model", default="cnn", choices=sorted(MODELS), help="network to train (default: cnn)")
    train.add_argument("--epochs", type=_positive(int), default=3)
    train.add_argument("--batch-size", type=_positive(int), default=64)
    train.add_argument("--lr", type=_positive(float), default=0.05)
    train.add_argument("--momentum", type=float, default=0.9)
    train.add_argument("--weight-decay", type=float, default=5e-4)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--limit", type=_positive(int), default=None,
                       help="use only the first N training images (quick runs)")
    train.add_argument("--out", type=Path, default=Path("runs/latest"),
                       help="directory for the checkpoint (default: runs/latest)")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _mlp():
    from . import nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def _cnn():
    """A small VGG-style network: two 3×3 conv + BN + ReLU + 2×2 max-pool stages, then a classifier."""
    from . import nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))


MODELS = {"mlp": _mlp, "cnn": _cnn}


def _normalize(images):
    # Fashion-MNIST's training mean and std of pixel/255.
    return ((images.astype(np.float32) / 255.0 - 0.2860) / 0.3530)[:, None, :, :]


def evaluate(model, images, labels, batch_size=500):
    """Top-1 accuracy of ``model`` on uint8 images (N, 28, 28)."""
    import minicnn
    model.eval()
    correct = 0
    with minicnn.no_grad():
        for start in range(0, len(images), batch_size):
            logits = model(minicnn.Tensor(_normalize(images[start:start + batch_size])))
            correct += int((logits.data.argmax(axis=1) == labels[start:start + batch_size]).sum())
    return correct / len(images)


def train(args):
    import minicnn
    import minicnn.functional as F
    from minicnn import optim
    from minicnn.data import fashion_mnist_mini
    from tqdm import tqdm

    minicnn.manual_seed(args.seed)
    x_train, y_train, x_test, y_test = fashion_mnist_mini()
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    model = MODELS[args.model]()
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]        # no decay on biases / BN
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = optim.SGD([{"params": decay, "weight_decay": args.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, momentum=args.momentum)
    rng = np.random.default_rng(args.seed)
    steps_per_epoch = len(x_train) // args.batch_size
    if steps_per_epoch == 0:
        raise CommandError(f"--batch-size {args.batch_size} is larger than the {len(x_train)} training images")
    print(f"training {args.model} on mini Fashion-MNIST: {len(x_train)} train / {len(x_test)} test images, "
          f"{sum(p.size for p in model.parameters()):,} parameters")
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = rng.permutation(len(x_train))
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{args.epochs}", disable=args.no_progress,
                   unit="batch", leave=True, file=sys.stdout)
        seen, correct, total_loss, started = 0, 0, 0.0, time.perf_counter()
        for step in bar:
            # Cosine decay of the learning rate over all steps.
            progress = ((epoch - 1) * steps_per_epoch + step) / (args.epochs * steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = args.lr * 0.5 * (1 + np.cos(np.pi * progress))
            index = order[step * args.batch_size:(step + 1) * args.batch_size]
            logits = model(minicnn.Tensor(_normalize(x_train[index])))
            loss = F.cross_entropy(logits, y_train[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(index)
            correct += int((logits.data.argmax(axis=1) == y_train[index]).sum())
            total_loss += loss.item() * len(index)
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.1%}",
                            img_s=f"{seen / (time.perf_counter() - started):.0f}")
        bar.close()
        if not np.isfinite(total_loss):
            raise CommandError(f"the loss became {total_loss / seen} in epoch {epoch}; try a smaller --lr")
    accuracy = evaluate(model, x_test, y_test)
    args.out.mkdir(parents=True, exist_ok=True)
    minicnn.save(model.state_dict(), args.out / "model.npz")
    print(f"checkpoint: {args.out / 'model.npz'}")
    print(f"test accuracy: {accuracy:.1%}")
    return accuracy


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            train(args)
    except CommandError as error:
        print(f"minicnn: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minicnn: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
