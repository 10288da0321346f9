"""Batch transforms: the preprocessing and augmentation of the papers, applied to a whole batch at once.

Shape letters: N images, C channels, H, W their height and width, OH, OW an output size, S a square size.

Layout. Every transform takes a batch and returns one in (N, C, H, W). Data sets hand out images as stored:
grey (N, H, W) (Fashion-MNIST, MNIST) or colour (N, H, W, 3) (CIFAR, image folders). ``to_nchw`` turns these
into (N, 1, H, W) and (N, 3, H, W) without copying, and every transform calls it on its input, so a pipeline
may start from raw data-set arrays. (N, C, H, W) is recognised by C ∈ {1, 3} on axis 1; pass ``layout=`` to
``to_nchw`` where that guess could be wrong (an (N, H, W, 3) batch with H = 3).

Call convention: ``transform(images, rng)`` with ``rng`` a ``numpy.random.Generator``; deterministic transforms
ignore it. The DataLoader passes a generator seeded from (seed, epoch, batch index), so a run draws the same
crops, flips and colour noise every time, whichever thread computes them. Random transforms draw their
parameters with ``sample(...)`` first, so a test (or a curious reader) can replay and inspect them. Transforms
never modify their input (it may be a read-only data-set array); they return new arrays.

Values: uint8 in 0..255 until ``ToFloat`` (x · scale, default 1/255: float32 in [0, 1]). Geometric transforms
(pad, crop, flip, resize) keep the dtype; the colour transforms (PCAColorNoise, ColorJitter) need floats.
Constants such as Normalize's mean and std are on the scale of the data they meet (fit them after ToFloat, or
pass ``scale=1/255`` to the ``fit`` functions to fit them on raw uint8 arrays).

The papers' training pipelines on 28×28 / 32×32 data (papers.md §2.3, §3.2, §4.1, §9 rule 5):

    AlexNet        Compose([ToFloat(), SubtractMeanImage.fit(x, 1/255), RandomCrop(28, padding=2),
                            RandomHorizontalFlip(), PCAColorNoise(*pca_color_basis(x, 1/255), std=0.1)])
    VGG            Compose([ToFloat(), ScaleJitter(32, 64, crop=32), RandomHorizontalFlip(),
                            PCAColorNoise(*basis), Normalize(mean, std)])
    Bag of Tricks  Compose([ToFloat(), RandomResizedCrop(32), RandomHorizontalFlip(), ColorJitter(0.4, 0.4, 0.4),
                            PCAColorNoise(*basis, std=0.1), Normalize(mean, std)])
    CIFAR          Compose([ToFloat(), RandomCrop(32, padding=4), RandomHorizontalFlip(), Normalize(mean, std)])
    10-crop test   Compose([ToFloat(), Normalize(mean, std), Pad(2), TenCrop(28)])        -> (N, 10, C, 28, 28)
"""
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["to_nchw", "Transform", "Compose", "ToFloat", "Normalize", "SubtractMeanImage", "Pad", "RandomCrop", "CenterCrop",
           "RandomHorizontalFlip", "Resize", "RandomResizedCrop", "ScaleJitter", "PCAColorNoise", "pca_color_basis",
           "ColorJitter", "FiveCrop", "TenCrop", "resample_boxes", "IMAGENET_PCA_EIGVALS", "IMAGENET_PCA_EIGVECS"]

# The ImageNet RGB basis (pixel values in [0, 1]) that fb.resnet.torch and its descendants use; the columns are
# the eigenvectors. minicnn computes its own with pca_color_basis; these are for comparison (papers.md §2.3).
IMAGENET_PCA_EIGVALS = np.array([0.2175, 0.0188, 0.0045])
IMAGENET_PCA_EIGVECS = np.array([[-0.5675, 0.7192, 0.4009],
                                 [-0.5808, -0.0045, -0.8140],
                                 [-0.5836, -0.6948, 0.4203]])


def to_nchw(images, layout=None):
    """The batch in (N, C, H, W), as a view: (N, H, W) -> (N, 1, H, W); (N, H, W, C) -> (N, C, H, W).

    layout: "NHW", "NHWC", "NCHW", or None to guess: 3 axes are NHW; 4 axes are NCHW when axis 1 has 1 or 3
    channels, else NHWC when the last axis has 1 or 3.
    """
    images = np.asarray(images)
    if layout is None:
        if images.ndim == 3:
            layout = "NHW"
        elif images.ndim == 4 and images.shape[1] in (1, 3):
            layout = "NCHW"
        elif images.ndim == 4 and images.shape[3] in (1, 3):
            layout = "NHWC"
        else:
            raise ValueError(f"to_nchw: expected a batch (N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3, "
                             f"got shape {images.shape}; pass layout= to say which it is")
    expected_ndim = {"NHW": 3, "NHWC": 4, "NCHW": 4}
    if layout not in expected_ndim or images.ndim != expected_ndim[layout]:
        raise ValueError(f"to_nchw: layout {layout!r} does not fit an array of shape {images.shape}")
    if layout == "NHW":
        return images[:, None]
    return images.transpose(0, 3, 1, 2) if layout == "NHWC" else images


def _pair(size, name):
    pair = (size, size) if np.isscalar(size) else tuple(size)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name}: expected a positive size or (height, width), got {size!r}")
    return int(pair[0]), int(pair[1])


def _float(images, name):
    images = to_nchw(images)
    if images.dtype.kind != "f":
        raise TypeError(f"{name}: expected floating-point images, got {images.dtype}; put ToFloat() before it")
    return images


def _check_fits(images, size, name):
    H, W = images.shape[2:]
    if size[0] > H or size[1] > W:
        raise ValueError(f"{name}: the output {size[0]}×{size[1]} is larger than the images ({H}×{W}); "
                         f"pad or resize them first")


class Transform:
    """Base class: ``__call__(images, rng)``; the repr lists the constructor's settings."""

    def __repr__(self):
        fields = ", ".join(f"{k}={'array' + str(v.shape) if isinstance(v, np.ndarray) else repr(v)}"
                           for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Compose(Transform):
    """Apply transforms in order, passing the same generator to each."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, images, rng=None):
        for transform in self.transforms:
            images = transform(images, rng)
        return images


class ToFloat(Transform):
    """(N, C, H, W) of ``dtype`` = images · scale; scale 1/255 maps uint8 to [0, 1], 1.0 keeps [0, 255]
    (Bag of Tricks normalises 0..255 values)."""

    def __init__(self, scale=1 / 255, dtype=np.float32):
        self.scale, self.dtype = scale, np.dtype(dtype)

    def __call__(self, images, rng=None):
        images = to_nchw(images).astype(self.dtype)
        return images if self.scale == 1 else images * self.dtype.type(self.scale)


def _chunks(images, scale, chunk=4096):
    """(N, C, H, W) images in float64 blocks of ``chunk`` images, times ``scale`` (bounded memory)."""
    images = to_nchw(images)
    for start in range(0, len(images), chunk):
        yield images[start:start + chunk].astype(np.float64) * scale


def _channel_moments(images, scale):
    """Per-channel mean (C,) and covariance (C, C) over every pixel of every image."""
    total, outer, count = 0.0, 0.0, 0
    for block in _chunks(images, scale):
        pixels = block.transpose(1, 0, 2, 3).reshape(block.shape[1], -1)      # (C, N·H·W)
        total, outer, count = total + pixels.sum(axis=1), outer + pixels @ pixels.T, count + pixels.shape[1]
    if count == 0:
        raise ValueError("cannot compute statistics of an empty batch")
    mean = total / count
    return mean, outer / count - np.outer(mean, mean)


class Normalize(Transform):
    """Per-channel (x − mean[c]) / std[c]; mean, std: (C,). ``Normalize.fit(images)`` computes them from the
    data (population std over all pixels), so the fitted data comes out with zero mean and unit std."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.std.shape or np.any(self.std <= 0):
            raise ValueError(f"Normalize: expected mean and std of the same length with std > 0, "
                             f"got mean {self.mean} and std {self.std}")

    @classmethod
    def fit(cls, images, scale=1.0):
        mean, covariance = _channel_moments(images, scale)
        return cls(mean, np.sqrt(np.diag(covariance)))

    def __call__(self, images, rng=None):
        images = to_nchw(images)
        if images.shape[1] != len(self.mean):
            raise ValueError(f"Normalize: constants for {len(self.mean)} channels, images have {images.shape[1]} "
                             f"(shape {images.shape})")
        dtype = images.dtype if images.dtype == np.float64 else np.float32
        mean, std = (a.astype(dtype)[:, None, None] for a in (self.mean, self.std))
        return (images - mean) / std


class SubtractMeanImage(Transform):
    """x − mean_image, the per-pixel mean of the training set (AlexNet, VGG; papers.md §2.3); mean_image
    (C, H, W) at the size of the images it meets, so it comes before any crop. ``SubtractMeanImage.fit(images)``
    computes it."""

    def __init__(self, mean_image):
        self.mean_image = to_nchw(np.asarray(mean_image, dtype=np.float64)[None])[0]

    @classmethod
    def fit(cls, images, scale=1.0):
        total, count = 0.0, 0
        for block in _chunks(images, scale):
            total, count = total + block.sum(axis=0), count + len(block)
        return cls(total / count)

    def __call__(self, images, rng=None):
        images = to_nchw(images)
        if images.shape[1:] != self.mean_image.shape:
            raise ValueError(f"SubtractMeanImage: mean image of shape {self.mean_image.shape}, images of shape "
                             f"{images.shape}; subtract the mean before cropping")
        dtype = images.dtype if images.dtype == np.float64 else np.float32
        return images - self.mean_image.astype(dtype)


class Pad(Transform):
    """Pad H by PH and W by PW on both sides: (N, C, H, W) -> (N, C, H + 2PH, W + 2PW). mode: "constant"
    (with ``value``), "edge" or "reflect" (NumPy's names)."""

    def __init__(self, padding, value=0, mode="constant"):
        self.padding = (padding, padding) if np.isscalar(padding) else tuple(padding)
        if len(self.padding) != 2 or min(self.padding) < 0:
            raise ValueError(f"Pad: expected padding >= 0 or (PH, PW), got {padding!r}")
        self.value, self.mode = value, mode

    def __call__(self, images, rng=None):
        images = to_nchw(images)
        (PH, PW), options = self.padding, ({"constant_values": self.value} if self.mode == "constant" else {})
        return np.pad(images, ((0, 0), (0, 0), (PH, PH), (PW, PW)), mode=self.mode, **options)


def _crop(images, top, left, size):
    """One window per image: images (N, C, H, W), top, left (N,) -> (N, C, OH, OW) (a copy)."""
    windows = sliding_window_view(images, size, axis=(2, 3))        # (N, C, H−OH+1, W−OW+1, OH, OW), a view
    return windows[np.arange(len(images)), :, top, left]


class RandomCrop(Transform):
    """A random size window of each image after zero-padding by ``padding`` (CIFAR's pad-4-and-crop-32; AlexNet's
    random 224 patches of the 256 image): every offset 0..H + 2P − OH equally likely."""

    def __init__(self, size, padding=0, value=0, mode="constant"):
        self.size, self.pad = _pair(size, "RandomCrop"), Pad(padding, value, mode)

    def sample(self, n, H, W, rng):
        """Offsets (top, left), each (n,), of the windows in the padded H×W images."""
        return rng.integers(0, H - self.size[0] + 1, n), rng.integers(0, W - self.size[1] + 1, n)

    def __call__(self, images, rng):
        images = self.pad(images) if max(self.pad.padding) else to_nchw(images)
        _check_fits(images, self.size, "RandomCrop")
        top, left = self.sample(len(images), *images.shape[2:], rng)
        return _crop(images, top, left, self.size)


class CenterCrop(Transform):
    """The central window, top = (H − OH) // 2 (as minicnn.training.evaluation.center_crop)."""

    def __init__(self, size):
        self.size = _pair(size, "CenterCrop")

    def __call__(self, images, rng=None):
        images = to_nchw(images)
        _check_fits(images, self.size, "CenterCrop")
        (H, W), (OH, OW) = images.shape[2:], self.size
        top, left = (H - OH) // 2, (W - OW) // 2
        return images[:, :, top:top + OH, left:left + OW].copy()


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability p (independently per image)."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, images, rng):
        images = to_nchw(images)
        flip = rng.random(len(images)) < self.p
        return np.where(flip[:, None, None, None], images[..., ::-1], images)


def _sample_positions(start, length, out_size, limit):
    """Input coordinates sampled by output pixels 0..out_size−1 on one axis, for a box [start, start + length)
    per image (pixel centres aligned as PIL and align_corners=False: p = start + (i + ½)·length/out_size − ½),
    clamped to the image 0..limit−1. start, length (N,) -> low, high (N, out_size) ints, frac (N, out_size)."""
    p = start[:, None] + (np.arange(out_size) + 0.5) * (length[:, None] / out_size) - 0.5
    p = np.clip(p, 0, limit - 1)
    low = np.floor(p).astype(np.intp)
    return low, np.minimum(low + 1, limit - 1), p - low


def _gather_rows(images, index):
    """images (N, L, ...), index (N, K) ints -> (N, K, ...) with out[n, k] = images[n, index[n, k]]: one flat
    ``take`` of whole rows (much faster than broadcast fancy indexing)."""
    N, L = images.shape[:2]
    flat = images.reshape(N * L, -1)
    rows = flat.take((np.arange(N)[:, None] * L + index).ravel(), axis=0)
    return rows.reshape(N, index.shape[1], *images.shape[2:])


def resample_boxes(images, top, left, height, width, size):
    """Bilinear resampling of one box per image to a common size: every crop-and-resize here is one call.

    images (N, C, H, W); top, left, height, width (N,) the box in pixels (fractions allowed); size (OH, OW).
    Returns (N, C, OH, OW), uint8 input rounded back to uint8. Separable: first the OH rows are interpolated
    (N, OH, W, C), then the OW columns. No antialiasing (like F.interpolate's default): a large reduction skips
    pixels. Samples near the box's border may blend with the pixel just outside it; they never leave the image
    (edge pixels repeat there).
    """
    images = to_nchw(images)
    H, W = images.shape[2:]
    dtype = np.float64 if images.dtype == np.float64 else np.float32
    y0, y1, fy = _sample_positions(np.asarray(top, float), np.asarray(height, float), size[0], H)    # (N, OH)
    x0, x1, fx = _sample_positions(np.asarray(left, float), np.asarray(width, float), size[1], W)   # (N, OW)
    fy, fx = fy.astype(dtype)[:, :, None, None], fx.astype(dtype)[:, :, None, None]

    pixels = np.ascontiguousarray(images.transpose(0, 2, 3, 1))                        # (N, H, W, C)
    top_rows, bottom_rows = (_gather_rows(pixels, y).astype(dtype) for y in (y0, y1))  # (N, OH, W, C)
    rows = top_rows + (bottom_rows - top_rows) * fy
    columns = np.ascontiguousarray(rows.transpose(0, 2, 1, 3))                          # (N, W, OH, C)
    left_columns, right_columns = (_gather_rows(columns, x) for x in (x0, x1))         # (N, OW, OH, C)
    out = (left_columns + (right_columns - left_columns) * fx).transpose(0, 3, 2, 1)   # (N, C, OH, OW)
    if images.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out.astype(images.dtype, copy=False))


def _shorter_side_size(H, W, S):
    """Output (OH, OW) when the shorter side of H×W becomes S (isotropic); S may be an array."""
    if H <= W:
        return S, np.rint(np.asarray(W * S / H)).astype(int)
    return np.rint(np.asarray(H * S / W)).astype(int), S


class Resize(Transform):
    """Bilinear resize: an int makes the SHORTER side that size (the papers' isotropic rescaling to scale S or
    Q, as minicnn.training.evaluation.resize); (OH, OW) gives the exact size."""

    def __init__(self, size):
        self.size = int(size) if np.isscalar(size) else _pair(size, "Resize")

    def __call__(self, images, rng=None):
        images = to_nchw(images)
        N, _, H, W = images.shape
        size = self.size if isinstance(self.size, tuple) else tuple(map(int, _shorter_side_size(H, W, self.size)))
        zeros, ones = np.zeros(N), np.ones(N)
        return resample_boxes(images, zeros, zeros, H * ones, W * ones, size)


class RandomResizedCrop(Transform):
    """A random box of area fraction U(scale) of the image and aspect ratio w/h log-uniform in ``ratio``,
    resized to ``size`` (Inception's distortion; Bag of Tricks §2: area 8%–100%, aspect 3/4–4/3).

    As torchvision: up to 10 draws per image, the first box that fits wins (rounded to whole pixels); when
    none fits, the largest central box whose aspect ratio is within ``ratio``.
    """

    ATTEMPTS = 10

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size, self.scale, self.ratio = _pair(size, "RandomResizedCrop"), tuple(scale), tuple(ratio)
        if not (0 < self.scale[0] <= self.scale[1] <= 1 and 0 < self.ratio[0] <= self.ratio[1]):
            raise ValueError(f"RandomResizedCrop: expected 0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= "
                             f"ratio[1], got scale={scale}, ratio={ratio}")

    def sample(self, n, H, W, rng):
        """Boxes (top, left, height, width), each (n,) ints."""
        area = H * W * rng.uniform(*self.scale, (n, self.ATTEMPTS))
        aspect = np.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), (n, self.ATTEMPTS)))
        w, h = np.rint(np.sqrt(area * aspect)).astype(int), np.rint(np.sqrt(area / aspect)).astype(int)
        fits = (w >= 1) & (w <= W) & (h >= 1) & (h <= H)
        first = fits.argmax(axis=1)
        rows = np.arange(n)
        h, w = h[rows, first], w[rows, first]
        if W / H < self.ratio[0]:
            fallback_h, fallback_w = int(round(W / self.ratio[0])), W
        elif W / H > self.ratio[1]:
            fallback_h, fallback_w = H, int(round(H * self.ratio[1]))
        else:
            fallback_h, fallback_w = H, W
        found = fits.any(axis=1)
        h, w = np.where(found, h, fallback_h), np.where(found, w, fallback_w)
        top, left = rng.integers(0, H - h + 1), rng.integers(0, W - w + 1)
        top, left = np.where(found, top, (H - h) // 2), np.where(found, left, (W - w) // 2)
        return top, left, h, w

    def __call__(self, images, rng):
        images = to_nchw(images)
        return resample_boxes(images, *self.sample(len(images), *images.shape[2:], rng), self.size)


class ScaleJitter(Transform):
    """VGG's scale jittering (§3.2): rescale each image so its shorter side is S, an integer uniform in
    [min_size, max_size], then take a random crop × crop window (224 from S ∈ [256, 512]; [32, 64] for 32×32
    data, papers.md §9). Computed as one resampling of the window's pre-image, equal to Resize(S) then the crop.
    """

    def __init__(self, min_size, max_size, crop):
        self.min_size, self.max_size, self.crop = int(min_size), int(max_size), _pair(crop, "ScaleJitter")
        if not max(self.crop) <= self.min_size <= self.max_size:
            raise ValueError(f"ScaleJitter: expected crop <= min_size <= max_size, got crop={crop}, "
                             f"min_size={min_size}, max_size={max_size}")

    def sample(self, n, H, W, rng):
        """S (n,), and the crop offsets top, left (n,) in the rescaled images of size _shorter_side_size(S)."""
        S = rng.integers(self.min_size, self.max_size + 1, n)
        RH, RW = _shorter_side_size(H, W, S)
        RH, RW = np.broadcast_to(RH, S.shape), np.broadcast_to(RW, S.shape)
        return S, rng.integers(0, RH - self.crop[0] + 1), rng.integers(0, RW - self.crop[1] + 1)

    def __call__(self, images, rng):
        images = to_nchw(images)
        H, W = images.shape[2:]
        S, top, left = self.sample(len(images), H, W, rng)
        RH, RW = _shorter_side_size(H, W, S)
        # Rescaled pixel j samples the original at (j + ½)·H/RH − ½: the window's pre-image is a box.
        y_step, x_step = H / RH, W / RW
        return resample_boxes(images, top * y_step, left * x_step, self.crop[0] * y_step, self.crop[1] * x_step,
                              self.crop)


def pca_color_basis(images, scale=1.0):
    """Eigen-decomposition of the C×C covariance of pixel colours over a whole training set (papers.md §2.3).

    images: any layout ``to_nchw`` reads, times ``scale`` (1/255 for uint8 data used after ToFloat()).
    Returns eigvals (C,) in decreasing order (variances along each direction) and eigvecs (C, C) whose
    COLUMNS are the eigenvectors p_i. The sign of each p_i is arbitrary (the noise is symmetric). For grey
    images (C = 1) the basis is [[1]]: PCA noise becomes a random brightness shift.
    """
    _, covariance = _channel_moments(images, scale)
    eigvals, eigvecs = np.linalg.eigh(covariance)
    order = np.argsort(eigvals)[::-1]
    return eigvals[order], eigvecs[:, order]


class PCAColorNoise(Transform):
    """AlexNet's "fancy PCA" lighting noise (papers.md §2.3): every pixel of image n gets Σ_i α_ni λ_i p_i
    added, with α_ni ~ N(0, std²) drawn once per image (std 0.1 in AlexNet and Bag of Tricks). The added colour
    has covariance P diag(std² λ²) Pᵀ. eigvals (C,), eigvecs (C, C) with eigenvectors as columns
    (pca_color_basis).
    """

    def __init__(self, eigvals, eigvecs, std=0.1):
        self.eigvals, self.eigvecs, self.std = np.asarray(eigvals, float), np.asarray(eigvecs, float), std
        C = len(self.eigvals)
        if self.eigvecs.shape != (C, C):
            raise ValueError(f"PCAColorNoise: expected eigvecs of shape ({C}, {C}) for {C} eigvals, "
                             f"got {self.eigvecs.shape}")

    def __call__(self, images, rng):
        images = _float(images, "PCAColorNoise")
        N, C = images.shape[:2]
        if C != len(self.eigvals):
            raise ValueError(f"PCAColorNoise: a basis for {len(self.eigvals)} channels, images have {C}")
        alpha = rng.normal(0.0, self.std, (N, C))
        shift = (alpha * self.eigvals) @ self.eigvecs.T                 # (N, C): row n is Σ_i α_ni λ_i p_i
        return images + shift[:, :, None, None].astype(images.dtype)


def _grey(images):
    """Luma (N, 1, H, W): 0.299 R + 0.587 G + 0.114 B (ITU-R 601, as PIL and torchvision); grey stays grey."""
    if images.shape[1] == 1:
        return images
    r, g, b = images[:, 0:1], images[:, 1:2], images[:, 2:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


class ColorJitter(Transform):
    """Random brightness, contrast and saturation, each factor f uniform in [max(0, 1 − b), 1 + b] per image
    (or in a given (low, high)); 0.4 gives Bag of Tricks' U[0.6, 1.4]. Applied in this fixed order:

        brightness  x · f
        contrast    m + f·(x − m)    m = the mean of the image's luma
        saturation  g + f·(x − g)    g = the luma image (grey images are unchanged)

    torchvision shuffles the order per call and also jitters hue; neither is done here. ``clip=(0, 1)`` clamps
    the result as torchvision does for floats; None (default) leaves values unclamped.
    """

    def __init__(self, brightness=0.0, contrast=0.0, saturation=0.0, clip=None):
        self.brightness, self.contrast, self.saturation = (self._range(v) for v in (brightness, contrast, saturation))
        self.clip = clip

    @staticmethod
    def _range(value):
        low, high = (max(0.0, 1.0 - value), 1.0 + value) if np.isscalar(value) else value
        if not 0 <= low <= high:
            raise ValueError(f"ColorJitter: expected a factor range 0 <= low <= high, got {value!r}")
        return float(low), float(high)

    def __call__(self, images, rng):
        images = _float(images, "ColorJitter")
        N, dtype = len(images), images.dtype

        def factors(low_high):
            return rng.uniform(*low_high, N).astype(dtype)[:, None, None, None]

        if self.brightness != (1.0, 1.0):
            images = images * factors(self.brightness)
        if self.contrast != (1.0, 1.0):
            mean = _grey(images).mean(axis=(1, 2, 3), keepdims=True)
            images = mean + factors(self.contrast) * (images - mean)
        if self.saturation != (1.0, 1.0):
            grey = _grey(images)
            images = grey + factors(self.saturation) * (images - grey)
        return images if self.clip is None else np.clip(images, *self.clip)


class FiveCrop(Transform):
    """The four corner windows and the centre one: (N, C, H, W) -> (N, 5, C, OH, OW), in the order top-left,
    top-right, bottom-left, bottom-right, centre (as minicnn.training.evaluation.five_crop)."""

    def __init__(self, size):
        self.size = _pair(size, type(self).__name__)

    def __call__(self, images, rng=None):
        images = to_nchw(images)
        _check_fits(images, self.size, type(self).__name__)
        (H, W), (OH, OW) = images.shape[2:], self.size
        corners = [images[:, :, :OH, :OW], images[:, :, :OH, W - OW:],
                   images[:, :, H - OH:, :OW], images[:, :, H - OH:, W - OW:]]
        return np.stack(corners + [CenterCrop(self.size)(images)], axis=1)


class TenCrop(FiveCrop):
    """AlexNet's ten test views (papers.md §2.5): the five crops, then the same five mirrored: (N, 10, C, OH, OW). (The
    evaluation module's ten_crop returns the same views stacked view-first, (10, N, C, OH, OW).)"""

    def __call__(self, images, rng=None):
        five = super().__call__(images)
        return np.concatenate([five, five[..., ::-1]], axis=1)
