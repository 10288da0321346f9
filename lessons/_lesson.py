"""What every lesson shares: its command line and where its figures go.

    python lessons/03_convolution.py            # the full run, figures into lessons/figures/
    python lessons/03_convolution.py --quick    # tiny data, few steps: what the test suite runs
    python lessons/03_convolution.py --out DIR  # figures somewhere else

Figures are drawn with matplotlib's Agg backend (no screen needed) and saved as PNG files named
after the lesson, e.g. ``03_im2col_matrix.png``.
"""
import argparse
import os
import sys
from pathlib import Path

FIGURES = Path(__file__).resolve().parent / "figures"


def setup(description, argv=None):
    """Parse ``--quick`` and ``--out``; return the arguments (``args.quick``, ``args.out``). Also asks
    malloc to keep freed memory for reuse (``minicnn.keep_freed_memory``, as ``minicnn train`` does)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="tiny data and few steps (seconds): checks that the lesson runs")
    parser.add_argument("--out", type=Path, default=FIGURES, help="directory for the figures")
    in_notebook = "ipykernel" in sys.modules
    args = parser.parse_args([] if in_notebook and argv is None else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MPLBACKEND", "Agg")
    import minicnn
    minicnn.keep_freed_memory()      # a training loop reuses its memory: no page faults step after step
    return args


def savefig(fig, args, name):
    """Save ``fig`` as ``<args.out>/<name>.png`` and print where it went."""
    path = Path(args.out) / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"figure: {path}")
    return path
