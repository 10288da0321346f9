"""im2col and col2im: turn a convolution into one matrix product.

Notation (used in every shape below):
    N        batch size
    C        input channels              G        groups
    H, W     input height and width      OH, OW   output height and width
    KH, KW   kernel height and width     SH, SW   stride
    PH, PW   zero padding (each side)    DH, DW   dilation (spacing of the kernel taps)

Output size along one axis (``conv_output_size``):

    OH = floor((H + 2·PH − DH·(KH − 1) − 1) / SH) + 1

``im2col`` copies, for every kernel tap (kh, kw), the input pixels that tap sees at every output
position; the convolution is then a single matrix product of the weights with those columns.
``col2im`` is its adjoint (⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩): it adds every column entry back to the
pixel it was copied from, which is exactly the backward pass of im2col.

Column layout: ``col`` has shape (C, KH, KW, N, OH, OW).
    Why this order: ``col.reshape(G, C/G·KH·KW, N·OH·OW)`` is free (no copy) and lines up with
    ``weight.reshape(G, Cout/G, C/G·KH·KW)``, so the forward pass is ONE GEMM per group with the
    whole batch in its long N·OH·OW dimension, and the backward GEMMs (gW = gy·colᵀ, gcol = Wᵀ·gy)
    read and write that same buffer with no transposed copy of it. The price is an NCHW ↔ CNHW
    transpose of x, y, gy and gx, each only about 1/(KH·KW) of the column size. Against the
    DeZero/Chainer layout (N, C, KH, KW, OH, OW), which needs one GEMM per image and a sum over N
    for gW, measured on float32 (benchmarks/README.md, "Column layouts"): im2col and col2im are
    5–25 % faster (each tap fills one contiguous block of col instead of N·C pieces); a conv step
    (forward, gx, gW, gb) ties on the 32×32 and AlexNet conv1 cases, is 3–8 % faster on ResNet's
    64→64 at 56×56, 8–16 % faster on small images (256→256 at 14×14, Inception's 1×7 at 17×17)
    where the per-image GEMMs are thin, and 15–30 % faster on depthwise 3×3.

Both functions loop over the KH·KW kernel offsets only (never over pixels or images): each
iteration is one strided slice copy (im2col) or one strided slice ``+=`` (col2im), so the same code
runs on NumPy and CuPy and keeps the input dtype (float32 stays float32). On CuPy arrays the
public functions dispatch to the CUDA kernels in ``minicnn/cuda/im2col_kernels.py`` (one thread per
element, col2im as a deterministic gather); ``im2col_by_slices`` / ``col2im_by_slices`` are the
slicing versions, callable on either backend, and the kernels are tested to equal them exactly.
On the CPU, a stride-1 conv whose output is as wide as its input (3×3 padding 1, 1×7 padding (0, 3),
1×1: every "same" conv) takes ``im2col_by_runs``, which copies one long run per image channel and tap
instead of OW-long rows: 1.5–3× faster on 28×28 to 7×7 maps, the same numbers. With numba installed
(``minicnn.cpu``) both functions run the compiled loops of ``minicnn/cpu/im2col_kernels.py`` instead:
the same copies and sums (bit for bit) in one call, where the NumPy versions take 8–12 calls, each of
which gives up Python's GIL and wins it back (on two threads that cost as much as the copies in the
thin layers of a small ResNet); col2im is also 1.7–3× faster.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import backend, cpu, parallel

__all__ = ["conv_output_size", "as_pair", "im2col", "col2im", "im2col_by_slices", "im2col_by_runs",
           "col2im_by_slices"]


def conv_output_size(size, kernel, stride, padding, dilation=1):
    """floor((size + 2·padding − dilation·(kernel − 1) − 1) / stride) + 1 (≤ 0: the kernel does not fit)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def as_pair(value, name="value", op="im2col"):
    """An int or a pair of ints → a (height, width) tuple of Python ints."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def _geometry(op, x_shape, kernel_size, stride, padding, dilation):
    """Check the hyper-parameters; return them as pairs plus the output size (OH, OW)."""
    (KH, KW), (SH, SW) = as_pair(kernel_size, "kernel_size", op), as_pair(stride, "stride", op)
    (PH, PW), (DH, DW) = as_pair(padding, "padding", op), as_pair(dilation, "dilation", op)
    if len(x_shape) != 4:
        raise ValueError(f"{op}: the input must be 4-D (N, C, H, W), got shape {tuple(x_shape)}")
    if min(KH, KW, SH, SW, DH, DW) < 1 or min(PH, PW) < 0:
        raise ValueError(f"{op}: kernel_size, stride and dilation must be ≥ 1 and padding ≥ 0, got "
                         f"kernel_size={(KH, KW)}, stride={(SH, SW)}, padding={(PH, PW)}, "
                         f"dilation={(DH, DW)}")
    H, W = x_shape[2], x_shape[3]
    OH = conv_output_size(H, KH, SH, PH, DH)
    OW = conv_output_size(W, KW, SW, PW, DW)
    if OH < 1 or OW < 1:
        raise ValueError(f"{op}: the dilated kernel {(DH * (KH - 1) + 1, DW * (KW - 1) + 1)} is larger than "
                         f"the padded input {(H + 2 * PH, W + 2 * PW)} (input shape {tuple(x_shape)})")
    return (KH, KW), (SH, SW), (PH, PW), (DH, DW), (OH, OW)


def _tap_window(kh, kw, geometry):
    """The (rows, cols) slices of the padded input that kernel tap (kh, kw) sees, one per output pixel."""
    _, (SH, SW), _, (DH, DW), (OH, OW) = geometry
    return (slice(kh * DH, kh * DH + SH * (OH - 1) + 1, SH),
            slice(kw * DW, kw * DW + SW * (OW - 1) + 1, SW))


def im2col(x, kernel_size, stride=1, padding=0, dilation=1, out=None):
    """Unfold image patches into columns.

    x       (N, C, H, W) NumPy or CuPy array
    out     optional (C, KH, KW, N, OH, OW) array to fill (a reused buffer); the fast CPU path
            (``im2col_by_runs``) needs it C-contiguous, any other takes the slice copies
    returns col of shape (C, KH, KW, N, OH, OW), same dtype and device as x, where
            col[c, kh, kw, n, oh, ow] = x_padded[n, c, oh·SH + kh·DH, ow·SW + kw·DW]
    """
    if backend.device_of(x) == "cuda" and x.dtype in (np.float32, np.float64):
        from ..cuda import im2col_kernels
        geometry = _geometry("im2col", x.shape, kernel_size, stride, padding, dilation)
        return im2col_kernels.im2col_gpu(x, *geometry, out=out)
    if backend.device_of(x) == "cpu" and (out is None or out.flags.c_contiguous) and cpu.kernels_apply(x):
        return _im2col_by_kernel(x, _geometry("im2col", x.shape, kernel_size, stride, padding, dilation), out)
    if (backend.device_of(x) == "cpu" and (out is None or out.flags.c_contiguous)
            and _by_runs(_geometry("im2col", x.shape, kernel_size, stride, padding, dilation), x.shape[3])):
        return im2col_by_runs(x, kernel_size, stride, padding, dilation, out=out)
    return im2col_by_slices(x, kernel_size, stride, padding, dilation, out=out)


def col2im(col, x_shape, kernel_size, stride=1, padding=0, dilation=1, out=None):
    """Fold columns back into an image, adding overlapping contributions: the adjoint of im2col.

    col     (C, KH, KW, N, OH, OW), e.g. the gradient with respect to im2col's output
    x_shape (N, C, H, W) of the image im2col was applied to
    out     optional C-contiguous (N, C, H, W) array to write the result into
    returns gx of shape (N, C, H, W), same dtype and device as col, where
            gx[n, c, h, w] = Σ col[c, kh, kw, n, oh, ow] over all (kh, kw, oh, ow) that read x[n, c, h, w]
    """
    geometry = _geometry("col2im", x_shape, kernel_size, stride, padding, dilation)
    _check_col_shape(col, x_shape, geometry)
    if backend.device_of(col) == "cuda" and col.dtype in (np.float32, np.float64):
        from ..cuda import im2col_kernels
        return im2col_kernels.col2im_gpu(col, tuple(x_shape), *geometry, out=out)
    if backend.device_of(col) == "cpu" and cpu.kernels_apply(col):
        return _col2im_by_kernel(col, tuple(x_shape), geometry, out)
    return col2im_by_slices(col, x_shape, kernel_size, stride, padding, dilation, out=out)


def _im2col_by_kernel(x, geometry, out):
    """im2col by the compiled kernel (minicnn.cpu), into out if given (C-contiguous)."""
    from ..cpu import im2col_kernels             # imports numba (minicnn.cpu)
    (KH, KW), stride, padding, dilation, (OH, OW) = geometry
    N, C = x.shape[:2]
    col = np.empty((C, KH, KW, N, OH, OW), dtype=x.dtype) if out is None else out
    if col.shape != (C, KH, KW, N, OH, OW) or col.dtype != x.dtype:
        raise ValueError(f"im2col: out has shape {col.shape} and dtype {col.dtype}, expected (C, KH, KW, N, OH, "
                         f"OW) = {(C, KH, KW, N, OH, OW)} and {x.dtype} for an input of shape {x.shape}")
    im2col_kernels.im2col(np.ascontiguousarray(x), col, *stride, *padding, *dilation)
    return col


def _col2im_by_kernel(col, x_shape, geometry, out):
    """col2im by the compiled kernel (minicnn.cpu), into out if given (copied there unless C-contiguous)."""
    from ..cpu import im2col_kernels
    _, stride, padding, dilation, _ = geometry
    if out is not None and (out.shape != x_shape or out.dtype != col.dtype):
        raise ValueError(f"col2im: out has shape {out.shape} and dtype {out.dtype}, expected {x_shape} "
                         f"and {col.dtype}")
    gx = out if out is not None and out.flags.c_contiguous else np.empty(x_shape, dtype=col.dtype)
    im2col_kernels.col2im(np.ascontiguousarray(col), gx, *stride, *padding, *dilation)
    if out is not None and gx is not out:
        out[...] = gx
        return out
    return gx


def _check_col_shape(col, x_shape, geometry):
    N, C = x_shape[0], x_shape[1]
    (KH, KW), _, _, _, (OH, OW) = geometry
    if tuple(col.shape) != (C, KH, KW, N, OH, OW):
        raise ValueError(f"col2im: col has shape {tuple(col.shape)}, expected (C, KH, KW, N, OH, OW) = "
                         f"{(C, KH, KW, N, OH, OW)} for an image of shape {tuple(x_shape)}")


def im2col_by_slices(x, kernel_size, stride=1, padding=0, dilation=1, out=None):
    """im2col as KH·KW strided slice copies; the readable reference, on NumPy or CuPy."""
    xp = backend.get_array_module(x)
    geometry = _geometry("im2col", x.shape, kernel_size, stride, padding, dilation)
    (KH, KW), _, (PH, PW), _, (OH, OW) = geometry
    N, C, H, W = x.shape
    if PH or PW:
        # One copy does both the zero padding and the NCHW → CNHW transpose.
        padded = xp.zeros((C, N, H + 2 * PH, W + 2 * PW), dtype=x.dtype)
        padded[:, :, PH:PH + H, PW:PW + W] = x.transpose(1, 0, 2, 3)
    else:
        padded = x.transpose(1, 0, 2, 3)          # a view: the slice copies below do the transpose
    col = xp.empty((C, KH, KW, N, OH, OW), dtype=x.dtype) if out is None else out
    if col.shape != (C, KH, KW, N, OH, OW):
        raise ValueError(f"im2col: out has shape {col.shape}, expected (C, KH, KW, N, OH, OW) = "
                         f"{(C, KH, KW, N, OH, OW)} for an input of shape {x.shape}")
    for kh in range(KH):
        for kw in range(KW):
            rows, cols = _tap_window(kh, kw, geometry)
            col[:, kh, kw] = padded[:, :, rows, cols]
    return col


def _by_runs(geometry, width):
    """Whether ``im2col_by_runs`` applies to this ``_geometry``: stride 1 and an output as wide as the input."""
    return geometry[1] == (1, 1) and geometry[4][1] == width


def im2col_by_runs(x, kernel_size, stride=1, padding=0, dilation=1, out=None):
    """im2col for stride 1 when OW = W (every "same" conv), as long contiguous copies; NumPy only.

    Each image channel is laid out flat, its W-wide rows one after another with PH zero rows above
    and below (no zero columns) and PW zeros at each end: flat[c, n, PW + (PH + h)·W + w] = x[n, c, h, w].
    Then tap (kh, kw)'s columns for all OH·W outputs of that channel are ONE slice of it,

        col[c, kh, kw, n, oh, ow] = flat[c, n, kh·DH·W + kw·DW + oh·W + ow],

    except where the tap's window reaches past the left or right edge (ow + kw·DW − PW outside
    [0, W)): there the slice runs on into the neighbouring row, and those columns are set to 0
    afterwards. The same numbers as ``im2col_by_slices``, copied in OH·W-long runs instead of
    OW-long rows (numpy's per-row cost dominates on small maps). The KH·KW runs of a channel are one
    read-only strided view of flat (``as_strided``: axes c, kh, kw, n, run with steps of a plane, DH·W,
    DW, an image's row and 1), so the whole col is ONE copy: on two threads, nine smaller copies
    had to win the GIL back between them (measured on 4 images' columns of 16 channels at 28×28: two
    threads 0.9–1.6× as fast as one with nine copies, 1.7× with one copy). out must be C-contiguous."""
    geometry = _geometry("im2col", x.shape, kernel_size, stride, padding, dilation)
    (KH, KW), _, (PH, PW), (DH, DW), (OH, OW) = geometry
    N, C, H, W = x.shape
    if not _by_runs(geometry, W):
        raise ValueError(f"im2col_by_runs: stride 1 and an output as wide as the input only, got stride "
                         f"{geometry[1]} and output width {OW} for input width {W}")
    col = np.empty((C, KH, KW, N, OH, OW), dtype=x.dtype) if out is None else out
    if col.shape != (C, KH, KW, N, OH, OW):
        raise ValueError(f"im2col: out has shape {col.shape}, expected (C, KH, KW, N, OH, OW) = "
                         f"{(C, KH, KW, N, OH, OW)} for an input of shape {x.shape}")
    if not col.flags.c_contiguous:
        raise ValueError(f"im2col_by_runs: out must be C-contiguous (it is filled through a reshape), "
                         f"got strides {col.strides}")
    start, size = PW + PH * W, H * W
    flat = parallel.workspace().get("im2col_runs", (C, N, (H + 2 * PH) * W + 2 * PW), x.dtype)
    flat[:, :, :start], flat[:, :, start + size:] = 0, 0
    flat[:, :, start:start + size] = x.reshape(N, C, size).transpose(1, 0, 2)
    # Every tap's run, as one view: tap (kh, kw) of channel c, image n starts kh·DH·W + kw·DW into its row.
    sc, sn, s = flat.strides
    taps = as_strided(flat, (C, KH, KW, N, OH * W), (sc, DH * W * s, DW * s, sn, s), writeable=False)
    np.copyto(col.reshape(C, KH, KW, N, OH * OW), taps)
    for kw in range(KW):            # the windows that wrapped round: input column ow + shift outside [0, W)
        shift = kw * DW - PW
        if shift:
            wrapped = slice(0, -shift) if shift < 0 else slice(W - shift, W)
            col[:, :, kw, :, :, wrapped] = 0
    return col


def col2im_by_slices(col, x_shape, kernel_size, stride=1, padding=0, dilation=1, out=None):
    """col2im as KH·KW strided slice additions (the mirror image of im2col_by_slices)."""
    xp = backend.get_array_module(col)
    geometry = _geometry("col2im", x_shape, kernel_size, stride, padding, dilation)
    _check_col_shape(col, x_shape, geometry)
    (KH, KW), _, (PH, PW), _, _ = geometry
    N, C, H, W = x_shape
    padded = xp.zeros((C, N, H + 2 * PH, W + 2 * PW), dtype=col.dtype)
    for kh in range(KH):
        for kw in range(KW):
            rows, cols = _tap_window(kh, kw, geometry)
            # Windows of different taps overlap when the stride is smaller than the kernel: `+=`
            # on a slice is safe here because within ONE tap every padded pixel is hit at most once.
            padded[:, :, rows, cols] += col[:, kh, kw]
    gx = padded[:, :, PH:PH + H, PW:PW + W].transpose(1, 0, 2, 3)
    if out is None:
        return xp.ascontiguousarray(gx)
    out[...] = gx
    return out
