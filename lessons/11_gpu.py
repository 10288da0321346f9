# %% [markdown]
# # Lesson 11 — minicnn on a GPU: the same code, CuPy arrays
#
# Every operation in `minicnn.functional` asks its inputs for their array module
# (`minicnn.backend.get_array_module`): NumPy arrays give NumPy, CuPy arrays give CuPy. So moving a
# network to the GPU is one line, `model.to("cuda")` (`minicnn.nn.Module.to`), and a batch follows
# with `minicnn.backend.to_device(x, "cuda")` (or `DataLoader(..., device="cuda")`). CuPy mirrors
# NumPy's API, so `conv2d`, `batch_norm`, `max_pool2d` … run unchanged.
#
# One place is different: `im2col` / `col2im`. On a CPU they loop over the KH·KW kernel taps and copy
# strided slices (`minicnn.functional.im2col.im2col_by_slices`). On a GPU, `im2col` dispatches to a
# hand-written CUDA kernel, `minicnn/cuda/im2col_kernels.py`. This lesson reads that kernel, then
# measures what the GPU buys:
#
# * **with a GPU** (CuPy installed and a CUDA device visible): the time of one training step of the
#   same ResNet on CPU and GPU, for a few batch sizes, and a check that the CUDA im2col equals the
#   NumPy one bit for bit;
# * **without one** (this machine, and CI): it says so, and measures the CPU side — minicnn's
#   slice-per-tap im2col against a naive loop over pixels, and the CPU time of a training step per
#   batch size — so the lesson still runs and draws its figures.

# %%
import inspect
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] if "__file__" in globals() else Path.cwd().parent
sys.path.insert(0, str(ROOT))                     # run from a checkout, without installing minicnn
sys.path.insert(0, str(ROOT / "lessons"))

import numpy as np
import matplotlib.pyplot as plt

import minicnn
from minicnn import backend, optim
from minicnn import functional as F
from minicnn.autograd import Tensor
from minicnn.cuda import im2col_kernels
from minicnn.functional.im2col import conv_output_size, im2col, im2col_by_slices
from minicnn.models.resnet import BasicBlock, ResNet
from _lesson import savefig, setup

args = setup("Lesson 11: minicnn on a GPU")
GPU = backend.gpu_available()
if GPU:
    print("GPU found: every timing below is measured on both the CPU and the GPU.")
else:
    print("No GPU here (CuPy missing or no CUDA device). This lesson runs on the CPU only: it shows the "
          "kernels, and measures the CPU side — im2col by slices vs a naive pixel loop, and the time of a "
          "training step. With a GPU it would also time the same training step on the GPU (model.to('cuda')) "
          "and report the speed-up per batch size, and check the CUDA im2col against NumPy's.")

# %% [markdown]
# ## 1. The CUDA kernels (`minicnn.cuda.im2col_kernels.CUDA_SOURCE`)
#
# * `im2col_kernel`: one thread per entry of the column buffer (C, KH, KW, N, OH, OW). It turns its
#   flat index back into (c, kh, kw, n, oh, ow), finds the input pixel (h, w) = (oh·SH − PH + kh·DH,
#   ow·SW − PW + kw·DW) and copies it, or writes 0 in the padding.
# * `col2im_kernel` is a **gather**: one thread per *input pixel*. The obvious scatter (one thread per
#   column entry, adding into its pixel) needs atomic adds, since several taps read the same pixel —
#   slow, and the order of float additions would change from run to run. Instead each pixel asks,
#   tap by tap, "which output position read me through this tap?" (oh = (h + PH − kh·DH)/SH if that
#   is a whole number inside [0, OH)) and sums those entries itself. No two threads write the same
#   place, so there are no atomics and the result is deterministic — bit-identical to the slicing
#   version, which sums the taps in the same order.
# * Every index is a 64-bit `long long`. A column buffer holds C·KH·KW·N·OH·OW entries: VGG's
#   conv1_2 at batch 128 is 64·9·128·224·224 ≈ 3.7·10⁹ > 2³¹, so 32-bit `int` indices would wrap
#   around and read the wrong memory with no error.
# * A grid-stride loop (`i += blockDim.x · gridDim.x`) lets a bounded grid cover any size.

# %%
print(im2col_kernels.CUDA_SOURCE)
print(inspect.getsource(im2col_kernels._launch))
print(inspect.getsource(im2col))
print(f"VGG conv1_2 column entries at batch 128: {64 * 9 * 128 * 224 * 224:,}  (2³¹ = {2 ** 31:,})")

# %% [markdown]
# ## 2. im2col on the CPU: one slice per tap vs one loop per pixel
#
# The naive version below visits every (n, c, oh, ow) and copies a KH×KW patch — what a first
# attempt looks like. minicnn's `im2col_by_slices` loops over the KH·KW taps only, each a single
# strided copy that NumPy runs in C. Both give the same columns.

# %%
print(inspect.getsource(im2col_by_slices))


def im2col_naive(x, k, padding):
    N, C, H, W = x.shape
    OH, OW = conv_output_size(H, k, 1, padding), conv_output_size(W, k, 1, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    col = np.empty((C, k, k, N, OH, OW), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    col[c, :, :, n, oh, ow] = xp[n, c, oh:oh + k, ow:ow + k]
    return col


def best_time(fn, repeat=3):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)                                 # the least disturbed run on a busy machine


rng = np.random.default_rng(0)
sizes = [(2, 4, 14), (4, 8, 28)] if args.quick else [(4, 8, 14), (8, 16, 28), (16, 16, 28), (32, 32, 28)]
naive_t, slices_t = [], []
for N, C, H in sizes:
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    assert np.array_equal(im2col_naive(x, 3, 1), im2col(x, 3, padding=1))
    naive_t.append(best_time(lambda: im2col_naive(x, 3, 1), repeat=1 if args.quick else 2))
    slices_t.append(best_time(lambda: im2col(x, 3, padding=1)))
    print(f"x {N}×{C}×{H}×{H}, 3×3 pad 1: naive {naive_t[-1] * 1e3:8.1f} ms   by slices "
          f"{slices_t[-1] * 1e3:6.2f} ms   ({naive_t[-1] / slices_t[-1]:.0f}× faster)")

# %% [markdown]
# ## 3. One training step: CPU (and GPU, when there is one)
#
# A ResNet-8 (widths 16-32-64) on 28×28 grey images, one SGD step = forward, cross-entropy,
# backward, update. On the GPU, CuPy launches kernels asynchronously, so the timer waits for the
# device (`synchronize`) before it stops.

# %%
def step_time(device, batch, repeat):
    minicnn.manual_seed(0)
    model = ResNet(BasicBlock, (1, 1, 1), (16, 32, 64), num_classes=10, in_channels=1, small_input=True)
    model.to(device)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = backend.to_device(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32), device)
    y = backend.to_device(rng.integers(0, 10, batch), device)

    def one_step():
        opt.zero_grad()
        F.cross_entropy(model(Tensor(x)), y).backward()
        opt.step()
        if device == "cuda":
            backend.cupy().cuda.Device().synchronize()

    one_step()                                        # warm-up: allocations, kernel compilation
    return best_time(one_step, repeat)


batches = [8, 32] if args.quick else [16, 64, 256]
cpu_t = [step_time("cpu", b, 1 if args.quick else 2) for b in batches]
gpu_t = [step_time("cuda", b, 5) for b in batches] if GPU else None
for i, b in enumerate(batches):
    line = f"batch {b:4}: CPU {cpu_t[i] * 1e3:8.1f} ms/step ({b / cpu_t[i]:6.0f} img/s)"
    if GPU:
        line += f"   GPU {gpu_t[i] * 1e3:7.1f} ms/step ({b / gpu_t[i]:7.0f} img/s)   speed-up {cpu_t[i] / gpu_t[i]:.1f}×"
    print(line)

if GPU:                                               # the CUDA kernels against NumPy, exactly
    cp = backend.cupy()
    x = rng.standard_normal((4, 8, 28, 28)).astype(np.float32)
    same = np.array_equal(cp.asnumpy(im2col(cp.asarray(x), 3, stride=2, padding=1)), im2col(x, 3, stride=2, padding=1))
    print(f"CUDA im2col equals NumPy im2col: {same}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
labels = [f"{N}×{C}×{H}²" for N, C, H in sizes]
axes[0].bar(np.arange(len(sizes)) - 0.2, np.array(naive_t) * 1e3, 0.4, label="naive loop over pixels")
axes[0].bar(np.arange(len(sizes)) + 0.2, np.array(slices_t) * 1e3, 0.4, label="minicnn: one slice per tap")
axes[0].set(xticks=range(len(sizes)), xticklabels=labels, yscale="log", ylabel="ms (log scale)",
            title="im2col, 3×3 kernel, padding 1 (CPU)")
axes[0].legend()
axes[1].plot(batches, [b / t for b, t in zip(batches, cpu_t)], "o-", label="CPU")
if GPU:
    axes[1].plot(batches, [b / t for b, t in zip(batches, gpu_t)], "s-", label="GPU")
axes[1].set(xscale="log", yscale="log", xlabel="batch size", ylabel="images / s",
            title="ResNet-8 training step" + ("" if GPU else " (no GPU: CPU only)"))
axes[1].legend()
savefig(fig, args, "11_speed")

# %% [markdown]
# The committed figure comes from a full run on a shared, heavily loaded 2-core machine without a
# GPU (load average about 15), so absolute times are several times slower than on an idle machine.
# It printed:
#
# | input (N×C×H²), 3×3 pad 1 | naive loop | by slices | ratio |
# |---|---|---|---|
# | 4×8×14² | 54.2 ms | 0.07 ms | 759× |
# | 8×16×28² | 727.7 ms | 0.56 ms | 1,309× |
# | 16×16×28² | 1,370.3 ms | 0.69 ms | 1,990× |
# | 32×32×28² | 10,455.2 ms | 2.75 ms | 3,796× |
#
# and a ResNet-8 (16-32-64) training step on the CPU took 4.6 s at batch 16 (3 img/s), 9.6 s at 64
# (7 img/s), 25.1 s at 256 (10 img/s). The gap between the two im2cols grows with the number of
# pixels, since the naive version pays Python's overhead once per (n, c, oh, ow) and the sliced one
# once per tap (9 here). Larger batches give more images per second even on a CPU, because the
# per-operation Python overhead is shared by more images.
#
# On a GPU the same script adds the GPU curve and the speed-up per batch size; expect the GPU to
# win more the larger the batch, since small batches leave most of its cores idle and the time goes
# into kernel launches and Python overhead.
