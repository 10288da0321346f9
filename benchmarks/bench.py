"""minicnn against PyTorch: single conv layers and whole training steps, time, FLOP/s and memory.

    PYTHONPATH=. python benchmarks/bench.py                           # every CPU row, all cores, wall clock
    PYTHONPATH=. python benchmarks/bench.py --threads 1 --clock cpu   # on a shared, busy machine
    PYTHONPATH=. python benchmarks/bench.py --layers resnet depthwise # some layers only (no names: all)
    PYTHONPATH=. python benchmarks/bench.py --steps resnet8           # some training steps only
    PYTHONPATH=. python benchmarks/bench.py --device cuda             # the GPU rows (ResNet-50 with AMP)
    PYTHONPATH=. python benchmarks/bench.py --keep-freed-memory       # malloc keeps freed memory (both)
    PYTHONPATH=. python benchmarks/bench.py --keep-cores-awake        # no idle cores between regions (both)
    PYTHONPATH=. python benchmarks/bench.py --no-winograd             # minicnn's 3×3 convs by im2col only
    PYTHONPATH=. python benchmarks/bench.py --no-cpu-kernels          # minicnn without numba's kernels
    PYTHONPATH=. python benchmarks/bench.py --layers --gemm           # + each layer's GEMMs against the peak
    PYTHONPATH=. python benchmarks/bench.py --device cuda --tf32      # TF32 on both sides (default: off)

PyTorch is only the yardstick (``pip install torch``); minicnn never imports it. Each repetition runs
minicnn then torch back to back (interleaved, so a slow phase of the machine hits both, with a pause
before each run so that neither library's spinning worker threads steal the cores from the other), and
the median over repetitions is reported, with ratio = minicnn time / torch time; "pairs IQR" is the
interquartile range of the repetitions' own ratios (each minicnn run over the torch run right after
it), which shows how far the machine's noise moves the ratio. After each pause one
untimed step of the same library runs first (``--settle``): on the 2-vCPU VM this was measured on, the
cores run at about half speed for tens of ms after an idle pause (four 384² GEMMs per thread: 5 ms
back to back, 9–13 ms for the first few calls after 0.2 s of sleep), which cost minicnn's two-thread
conv steps 60–80 % and PyTorch's 8–20 %; a training loop never pauses, so the timed step is the second.
A step shorter than ``--min-sample-ms`` (20 ms; only the depthwise row, 2–4 ms) is timed as k steps in a
row, the same k for both libraries (from the faster warm-up step), and reported per step: timed alone
after the pause, the depthwise step measured the cores' wake-up (minicnn 3.3–4.1 ms, torch 1.9–5.7 ms
in one session's runs, against ~1.6 and ~1 ms back to back).

Rows. A *layer* row is one training step of a single convolution: forward, then backward with a fixed
random upstream gradient (gx, gW and gb). A *step* row is a whole training step of a network: zero the
gradients, forward, cross-entropy, backward, SGD with momentum 0.9 and weight decay 5e-4; the torch
network is built from the minicnn one layer for layer with the same weights (``twins.py``), and both
are checked to give the same logits, loss and gradients before timing.

GFLOP/s is nominal: 3 × 2 × the multiply-adds of the forward pass (forward, gx and gW products of
every conv and linear layer, as counted by ``minicnn.models.summary``), whatever the algorithm does.
Memory. "traced" is the peak of NumPy allocations during one untimed minicnn step above what was live
before it (tracemalloc; torch's allocator is invisible to it). "RSS" is the peak growth of the resident
set over the first two steps of ONE library in a fresh process of its own (VmHWM, reset through
/proc/self/clear_refs, minus VmRSS before; in the timing process the two libraries share the
allocator's heap), so it includes the optimizer's state and what the allocator keeps. "faults" counts
the minor page faults of a timed step (fresh memory the kernel had to map), median over repetitions.

GEMMs (``--gemm``). First the machine's measured matmul peak: the best of 5 square float32 products
(2048² on the CPU, with BLAS on all threads; 8192² on the GPU). Then, under each layer row, the three
products of that conv as im2col makes them, y = W·col, gW = gy·colᵀ and gcol = Wᵀ·gy (per group,
(Cout/G × K)·(K × P) and the like, K = C/G·KH·KW, P = N·OH·OW), each timed alone on random arrays
(median of --reps), as TFLOP/s, as a fraction of the peak, and as a fraction of minicnn's step time:
the issue's "fraction of the GPU's matmul peak the conv GEMMs reach", and how much of a step is
GEMM at all (the rest: im2col and col2im passes, kernel launches, Python). On the CPU minicnn may take
other routes (Winograd, the depthwise sum, gx as a convolution of gy), so there the products show
what BLAS makes of these shapes, not what minicnn spends.

TF32. On the GPU both sides multiply float32 in full float32 unless ``--tf32``: the script sets
``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32`` (whose default is
True: cuDNN's convolutions would round to TF32) to ``--tf32``, and with it calls
``minicnn.set_float32_matmul_precision("high")`` (minicnn's default is full float32).

On a machine shared with other jobs wall-clock times swing by 2-3x; ``--threads 1 --clock cpu`` (one
BLAS/OpenMP thread on both sides, CPU time of the process) is the stable alternative, because a
single thread's CPU time does not include the time it waited for a core.
"""
import argparse
import gc
import importlib
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc

import numpy as np

import minicnn
import minicnn.functional as F
from minicnn.functional.conv import conv2d
from minicnn.functional.im2col import as_pair, conv_output_size

# name: (N, C, H, W, Cout, kernel, stride, padding, groups)
LAYERS = {
    "resnet":    (8, 64, 56, 56, 64, (3, 3), 1, 1, 1),        # ResNet 64→64 3×3 at 56×56
    "conv14":    (8, 256, 14, 14, 256, (3, 3), 1, 1, 1),      # 256→256 3×3 at 14×14
    "alexnet":   (8, 3, 227, 227, 96, (11, 11), 4, 0, 1),     # AlexNet conv1
    "inception": (8, 192, 17, 17, 192, (1, 7), 1, (0, 3), 1),  # Inception-v3 1×7
    "depthwise": (8, 256, 14, 14, 256, (3, 3), 1, 1, 256),    # depthwise 3×3
}


def _resnet8():
    from minicnn.cli import resnet8
    return resnet8()


def _resnet18_small():
    from minicnn.models import resnet18
    return resnet18(num_classes=10, small_input=True)


def _resnet50():
    from minicnn.models import resnet50
    return resnet50()


# name: (builder, batch, (C, H, W), devices, mixed precision on the GPU)
STEPS = {
    "resnet8":   (_resnet8, 64, (1, 28, 28), ("cpu", "cuda"), False),     # `minicnn train`'s default
    "resnet18s": (_resnet18_small, 128, (3, 32, 32), ("cpu", "cuda"), False),
    "resnet50":  (_resnet50, 32, (3, 224, 224), ("cuda",), True),
}


# ---------------------------------------------------------------- measuring ----------------------

def timer(step, clock="wall", sync=None):
    """Seconds one call of ``step`` takes (process CPU time with clock="cpu")."""
    now = time.process_time if clock == "cpu" else time.perf_counter
    start = now()
    step()
    if sync is not None:
        sync()
    return now() - start


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def rss_growth(step):
    """MiB the resident set grew by during ``step`` (peak minus start); None where Linux cannot say."""
    gc.collect()
    try:
        before = _status_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                                   # reset VmHWM to the current RSS
        step()
        return (_status_kib("VmHWM") - before) / 1024
    except (OSError, StopIteration):
        return None


def traced_peak(step):
    """MiB of the peak of NumPy allocations during ``step`` above what was allocated before it."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 2 ** 20


KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(2 ** 30), "MALLOC_TRIM_THRESHOLD_": str(2 ** 32)}


def restart_keeping_freed_memory():
    """Re-run this script with glibc's malloc keeping freed memory for reuse (both libraries): arrays
    up to 1 GiB come from the heap instead of fresh mmaps, and the heap is not trimmed, so a step does
    not page-fault in again the memory the previous step freed (the role jemalloc/tcmalloc play in
    PyTorch's CPU performance guide)."""
    if any(os.environ.get(k) != v for k, v in KEEP_FREED_MEMORY.items()):
        os.environ.update(KEEP_FREED_MEMORY)
        os.execv(sys.executable, [sys.executable, *sys.argv])


def restart_with_threads(threads):
    """Re-run this script with BLAS/OpenMP (and minicnn) limited to ``threads`` (NumPy's BLAS fixes it at
    load)."""
    if threads and os.environ.get("OPENBLAS_NUM_THREADS") != str(threads):
        for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MINICNN_NUM_THREADS"):
            os.environ[variable] = str(threads)
        os.execv(sys.executable, [sys.executable, *sys.argv])


def machine(device):
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    import torch
    text = (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, numpy {np.__version__}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), minicnn {minicnn.get_num_threads()} threads")
    if device == "cpu":
        from minicnn import cpu as kernels
        text += (f", CPU kernels: numba {importlib.import_module('numba').__version__}"
                 if kernels.kernels_apply(np.zeros(1, np.float32)) else ", CPU kernels: off (NumPy path)")
    if device == "cuda":
        cp = minicnn.backend.cupy()
        text += f"; {torch.cuda.get_device_name()}, CuPy {cp.__version__}"
    return text


# ---------------------------------------------------------------- the cases ----------------------

class Case:
    """What one row needs: the two steps, a correctness check, nominal flops and a memory reference."""

    def __init__(self, minicnn_step, torch_step, check, flops, note=""):
        self.minicnn_step, self.torch_step, self.check = minicnn_step, torch_step, check
        self.flops, self.note = flops, note


def _close(ours, theirs, what, tol=2e-3):
    theirs = theirs.detach().cpu().numpy()
    ours = minicnn.backend.as_numpy(ours)
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * float(np.abs(theirs).max()) + 1e-7,
                               err_msg=what)


def layer_case(name, device):
    import torch
    N, C, H, W, Cout, kernel, stride, padding, groups = LAYERS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((Cout, C // groups, *kernel), dtype=np.float32) * 0.1
    b = rng.standard_normal(Cout, dtype=np.float32)
    mx, mw, mb = (minicnn.Tensor(a).to(device) for a in (x, w, b))
    for t in (mx, mw, mb):
        t.requires_grad = True
    tx, tw, tb = (torch.tensor(a, device=device, requires_grad=True) for a in (x, w, b))
    (KH, KW), (SH, SW), (PH, PW) = kernel, as_pair(stride), as_pair(padding)
    OH, OW = conv_output_size(H, KH, SH, PH), conv_output_size(W, KW, SW, PW)
    gy = rng.standard_normal((N, Cout, OH, OW), dtype=np.float32)
    mgy, tgy = minicnn.backend.to_device(gy, device), torch.tensor(gy, device=device)

    def minicnn_step():
        for t in (mx, mw, mb):
            t.grad = None
        conv2d(mx, mw, mb, stride, padding, 1, groups).backward(mgy)

    def torch_step():
        for t in (tx, tw, tb):
            t.grad = None
        torch.nn.functional.conv2d(tx, tw, tb, stride, padding, 1, groups).backward(tgy)

    def check():
        minicnn_step(), torch_step()
        for m, t, what in ((mx, tx, "gx"), (mw, tw, "gW"), (mb, tb, "gb")):
            _close(m.grad.data, t.grad, f"{name}: {what}")

    column_mib = C * KH * KW * N * OH * OW * 4 / 2 ** 20
    flops = 3 * 2 * N * Cout * OH * OW * (C // groups) * KH * KW
    return Case(minicnn_step, torch_step, check, flops, f"im2col buffer {column_mib:.1f} MiB")


def step_case(name, device):
    import torch
    from minicnn import optim
    from minicnn.models import count_parameters, summary
    from twins import parameter_count, torch_twin
    build, N, shape, _, amp = STEPS[name]
    minicnn.manual_seed(0)
    model = build()
    twin = torch_twin(model).to(device)
    model.to(device)
    n_params, n_twin = count_parameters(model), parameter_count(twin)
    if n_params != n_twin:
        raise RuntimeError(f"{name}: minicnn has {n_params:,} parameters, its torch twin {n_twin:,}")
    macs = summary(model, shape, verbose=False).total_macs * N
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, *shape), dtype=np.float32)
    target = rng.integers(0, 10 if "18" in name or "8" in name else 1000, N)
    options = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)
    opt, topt = optim.SGD(model.parameters(), **options), torch.optim.SGD(twin.parameters(), **options)
    mx, mt = minicnn.Tensor(x).to(device), minicnn.Tensor(minicnn.backend.to_device(target, device))
    tx, tt = torch.tensor(x, device=device), torch.tensor(target, device=device)
    if amp:
        return _amp_case(model, twin, opt, topt, mx, mt, tx, tt, macs, n_params)

    def minicnn_step():
        opt.zero_grad()
        F.cross_entropy(model(mx), mt).backward()
        opt.step()

    def torch_step():
        topt.zero_grad()
        torch.nn.functional.cross_entropy(twin(tx), tt).backward()
        topt.step()

    def check():       # before any update: same logits, loss and gradients
        opt.zero_grad(), topt.zero_grad()
        logits, tlogits = model(mx), twin(tx)
        _close(logits.data, tlogits, f"{name}: logits")
        loss, tloss = F.cross_entropy(logits, mt), torch.nn.functional.cross_entropy(tlogits, tt)
        loss.backward(), tloss.backward()
        _close(loss.data, tloss, f"{name}: loss")
        for (pname, p), tp in zip(model.named_parameters(), twin.parameters()):
            # Norm-wise: float32 rounding differs element by element through ~20 layers of BN.
            ours, theirs = minicnn.backend.as_numpy(p.grad.data), tp.grad.cpu().numpy()
            error = np.linalg.norm(ours - theirs) / max(np.linalg.norm(theirs), 1e-12)
            if not error < 1e-2:
                raise AssertionError(f"{name}: gradient of {pname} differs from torch's by {error:.1e} (norm)")
        opt.step(), topt.step()

    return Case(minicnn_step, torch_step, check, 3 * 2 * macs, f"{n_params:,} parameters in both")


def _amp_case(model, twin, opt, topt, mx, mt, tx, tt, macs, n_params):
    """Mixed precision on the GPU: minicnn.training.amp against torch.autocast + GradScaler."""
    import torch
    from minicnn.training.amp import GradScaler, cast_parameters
    scaler, tscaler = GradScaler(), torch.amp.GradScaler("cuda")
    mx16 = mx.to(dtype=np.float16)

    def minicnn_step():
        opt.zero_grad()
        with cast_parameters(model):
            loss = F.cross_entropy(model(mx16).to(dtype=np.float32), mt)
            scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def torch_step():
        topt.zero_grad()
        with torch.autocast("cuda", dtype=torch.float16):
            loss = torch.nn.functional.cross_entropy(twin(tx), tt)
        tscaler.scale(loss).backward()
        tscaler.step(topt)
        tscaler.update()

    def check():
        minicnn_step(), torch_step()     # runs without error; float16 values are not compared

    return Case(minicnn_step, torch_step, check, 3 * 2 * macs, f"{n_params:,} parameters, float16 AMP")


# ---------------------------------------------------------------- GEMMs against the peak ---------

def _random(xp, shape, rng):
    if xp is np:
        return rng.standard_normal(shape, dtype=np.float32)
    return xp.random.standard_normal(shape, dtype=np.float32)


def _best_and_median(product, reps, sync):
    times = []
    for _ in range(reps):
        times.append(timer(product, "wall", sync))
    return min(times), statistics.median(times)


def matmul_peak(device, sync, reps=5):
    """TFLOP/s of the best of ``reps`` square float32 products (2048² on the CPU, 8192² on the GPU)."""
    xp = minicnn.backend.cupy() if device == "cuda" else np
    n = 8192 if device == "cuda" else 2048
    a, b = (_random(xp, (n, n), np.random.default_rng(i)) for i in range(2))
    out = xp.empty((n, n), dtype=np.float32)
    xp.matmul(a, b, out=out)
    best, _ = _best_and_median(lambda: xp.matmul(a, b, out=out), reps, sync)
    return 2 * n ** 3 / best / 1e12, n


def conv_gemms(name, device, sync, reps):
    """(seconds, flops) of the three im2col products of layer ``name``, each timed alone (median)."""
    N, C, H, W, Cout, (KH, KW), stride, padding, G = LAYERS[name]
    (SH, SW), (PH, PW) = as_pair(stride), as_pair(padding)
    K, M = C // G * KH * KW, Cout // G
    P = N * conv_output_size(H, KH, SH, PH) * conv_output_size(W, KW, SW, PW)
    xp = minicnn.backend.cupy() if device == "cuda" else np
    rng = np.random.default_rng(0)
    seconds = 0.0
    for left, right in (((G, M, K), (G, K, P)), ((G, M, P), (G, P, K)), ((G, K, M), (G, M, P))):
        a, b = _random(xp, left, rng), _random(xp, right, rng)
        out = xp.empty((G, left[1], right[2]), dtype=np.float32)
        xp.matmul(a, b, out=out)
        seconds += _best_and_median(lambda: xp.matmul(a, b, out=out), reps, sync)[1]
        del a, b, out
    return seconds, 3 * 2 * G * M * K * P


# ---------------------------------------------------------------- running ------------------------

def run(case, args, sync):
    case.check()
    warm = [[timer(step, args.clock, sync) for step in (case.minicnn_step, case.torch_step)]
            for _ in range(args.warmup)]
    # Steps shorter than --min-sample-ms are timed k at a time (the same k for both libraries): a lone
    # step of a few ms right after the pause measures the cores' wake-up more than the step.
    k = max(1, math.ceil(args.min_sample_ms / (1e3 * min(min(w) for w in warm)))) if warm else 1
    times, faults = [], []
    for _ in range(args.reps):
        # The pause lets the other library's worker threads stop spin-waiting (OpenBLAS and
        # OpenMP both spin for a while after a parallel region), which would steal the cores.
        row = []
        for step in (case.minicnn_step, case.torch_step):
            time.sleep(args.pause)
            for _ in range(args.settle):
                step()
            start = minor_faults()
            row.append(timer(lambda: [step() for _ in range(k)], args.clock, sync) / k)
            faults.append((minor_faults() - start) / k)
        times.append(row)
    ours, theirs = (statistics.median(t[i] for t in times) for i in (0, 1))
    ratios = sorted(ours_i / theirs_i for ours_i, theirs_i in times)   # each repetition's pair, back to back
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return ours, theirs, (quartiles[0], quartiles[2]), statistics.median(faults[0::2]), statistics.median(faults[1::2])


def memory_of(case, name, kind, args):
    """(minicnn traced MiB, minicnn RSS MiB, torch RSS MiB) on the CPU; GPU pool sizes on cuda."""
    if args.device == "cuda":
        import torch
        pool = minicnn.backend.cupy().get_default_memory_pool()
        pool.free_all_blocks()
        case.minicnn_step()
        torch.cuda.reset_peak_memory_stats()
        case.torch_step()
        # CuPy keeps no peak: its pool's size after a step is an upper bound of the peak.
        return None, pool.total_bytes() / 2 ** 20, torch.cuda.max_memory_allocated() / 2 ** 20
    return (traced_peak(case.minicnn_step), rss_in_child(kind, name, "minicnn", args),
            rss_in_child(kind, name, "torch", args))


def rss_in_child(kind, name, library, args):
    """Peak RSS growth (MiB) over two steps of one library, run in a fresh process of its own (in
    this one both libraries share the allocator's heap, which hides what each of them needs)."""
    command = [sys.executable, os.path.abspath(__file__), "--rss-child", kind, name, library,
               "--threads", str(args.threads)] + (["--no-winograd"] if args.no_winograd else []) + (
                   ["--no-cpu-kernels"] if args.no_cpu_kernels else [])
    result = subprocess.run(command, capture_output=True, text=True)
    try:
        return float(result.stdout.split()[-1])
    except (IndexError, ValueError):
        return None


def rss_child(kind, name, library):
    case = (layer_case if kind == "layer" else step_case)(name, "cpu")
    step = case.minicnn_step if library == "minicnn" else case.torch_step
    growth = rss_growth(lambda: (step(), step()))
    print("–" if growth is None else f"{growth:.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", nargs="*", choices=sorted(LAYERS), help="layer rows (no names: all)")
    parser.add_argument("--steps", nargs="*", choices=sorted(STEPS), help="training-step rows (no names: all)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--pause", type=float, default=0.2, help="seconds of idle before each timed run")
    parser.add_argument("--settle", type=int, default=1,
                        help="untimed steps of the same library between the pause and the timed one")
    parser.add_argument("--min-sample-ms", type=float, default=20,
                        help="rows whose step is shorter are timed over k consecutive steps (same k for both)")
    parser.add_argument("--threads", type=int, default=0, help="BLAS/OpenMP threads (default: all cores)")
    parser.add_argument("--minicnn-threads", type=int, default=0,
                        help="minicnn's own threads (minicnn.set_num_threads; default: --threads or all cores)")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="glibc malloc: no mmap below 1 GiB, no trimming (both libraries; see docstring)")
    parser.add_argument("--keep-cores-awake", action="store_true",
                        help="minicnn.parallel.keep_cores_awake(): idle-priority busy processes keep the cores "
                             "from idling (both libraries run with them; see benchmarks/README.md, session 11)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: process CPU time, meaningful with --threads 1 on the CPU only")
    parser.add_argument("--no-winograd", action="store_true",
                        help="minicnn's convs by im2col only (no Winograd), to compare")
    parser.add_argument("--no-cpu-kernels", action="store_true",
                        help="minicnn without its compiled CPU kernels (minicnn.cpu: batch norm, depthwise conv)")
    parser.add_argument("--gemm", action="store_true",
                        help="also the matmul peak and each layer's im2col GEMMs against it (see docstring)")
    parser.add_argument("--tf32", action="store_true",
                        help="GPU: let both libraries round float32 products to TF32 (default: full float32)")
    parser.add_argument("--rss-child", nargs=3, metavar=("KIND", "NAME", "LIBRARY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.no_winograd:
        from minicnn.functional.winograd import WinogradConv2dFunction
        WinogradConv2dFunction.min_channels = dict.fromkeys(WinogradConv2dFunction.min_channels, float("inf"))
    if args.no_cpu_kernels:
        minicnn.cpu.enabled = False
    if args.rss_child:
        import torch
        torch.set_num_threads(args.threads or os.cpu_count())
        return rss_child(*args.rss_child)
    if args.layers is None and args.steps is None:
        args.layers, args.steps = list(LAYERS), list(STEPS)
    layers = (args.layers or list(LAYERS)) if args.layers is not None else []
    steps = (args.steps or list(STEPS)) if args.steps is not None else []
    restart_with_threads(args.threads)
    if args.keep_freed_memory:
        restart_keeping_freed_memory()
    import torch
    torch.set_num_threads(args.threads or os.cpu_count())
    minicnn.set_num_threads(args.minicnn_threads or args.threads or os.cpu_count())
    os.environ["MINICNN_NUM_THREADS"] = str(minicnn.get_num_threads())    # the same in the RSS children
    if args.keep_cores_awake and args.device == "cpu":
        minicnn.parallel.keep_cores_awake()
    sync = None
    if args.device == "cuda":
        if not (torch.cuda.is_available() and minicnn.gpu_available()):
            print("--device cuda: skipped, no GPU here (needs CuPy and PyTorch to see a CUDA device)")
            return
        cp = minicnn.backend.cupy()

        def sync():
            cp.cuda.Device().synchronize()
            torch.cuda.synchronize()

        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
        if args.tf32:                          # minicnn's default is full float32 already
            minicnn.set_float32_matmul_precision("high")

    print(machine(args.device))
    print(f"float32 unless noted; median of {args.reps} interleaved runs ({args.pause} s pause, {args.settle} untimed step before each; steps under {args.min_sample_ms:g} ms timed k in a row), {args.clock} clock; ratio = minicnn/torch"
          + ("; malloc keeps freed memory" if args.keep_freed_memory else "")
          + ("; cores kept awake" if args.keep_cores_awake and args.device == "cpu" else "")
          + ("; minicnn without Winograd" if args.no_winograd else "")
          + (("; TF32 on both sides" if args.tf32 else "; TF32 off on both sides") if args.device == "cuda" else ""))
    peak = None
    if args.gemm:
        peak, n = matmul_peak(args.device, sync)
        print(f"measured matmul peak: {peak:.3f} TFLOP/s (float32 {n}×{n}×{n}, best of 5)")
    memory = ("MiB: – | CuPy pool (upper bound) | torch peak" if args.device == "cuda" else
              "MiB: minicnn traced | minicnn RSS | torch RSS")
    print(f"{'case':10s} {'minicnn ms':>10s} {'torch ms':>9s} {'ratio':>6s} {'pairs IQR':>10s} {'minicnn GF/s':>12s} "
          f"{'torch GF/s':>10s} {'faults m | t':>14s}  {memory}   note")
    rows = [(name, layer_case) for name in layers] + [(name, step_case) for name in steps]
    for name, make in rows:
        if make is step_case and args.device not in STEPS[name][3]:
            print(f"{name:10s} skipped on {args.device} (only {', '.join(STEPS[name][3])})")
            continue
        case = make(name, args.device)
        ours, theirs, (low, high), our_faults, their_faults = run(case, args, sync)
        traced, our_rss, their_rss = memory_of(case, name, "layer" if make is layer_case else "step", args)
        mem = " | ".join("–" if v is None else f"{v:.1f}" for v in (traced, our_rss, their_rss))
        print(f"{name:10s} {ours * 1e3:10.1f} {theirs * 1e3:9.1f} {ours / theirs:6.2f} {f'{low:.2f}–{high:.2f}':>10s} "
              f"{case.flops / ours / 1e9:12.1f} {case.flops / theirs / 1e9:10.1f} "
              f"{our_faults:6.0f} | {their_faults:5.0f}  {mem:40s}   {case.note}", flush=True)
        del case
        if peak is not None and make is layer_case:
            gemm_seconds, gemm_flops = conv_gemms(name, args.device, sync, args.reps)
            achieved = gemm_flops / gemm_seconds / 1e12
            print(f"{'':10s} its im2col GEMMs: {gemm_seconds * 1e3:.1f} ms, {achieved:.3f} TFLOP/s = "
                  f"{achieved / peak:.0%} of the peak; {gemm_seconds / ours:.0%} of minicnn's step time", flush=True)
        gc.collect()


if __name__ == "__main__":
    main()
