"""Specification of minicnn.data.transforms: layouts, and the statistics of every random transform (flip
probability, crop offsets, box areas and aspects, scale-jitter sizes, PCA noise covariance, colour factors)."""
import numpy as np
import pytest

from minicnn.data import transforms as T
from minicnn.training import evaluation as E


def tolerance(p, n):
    """Four standard errors of a frequency p measured on n independent draws."""
    return 4 * np.sqrt(p * (1 - p) / n)


def replay(seed=0):
    return np.random.default_rng(seed)


@pytest.fixture
def colour():
    """Float colour images (N, C, H, W) with distinct pixel values."""
    return np.random.default_rng(1).random((6, 3, 12, 16))


# ---- layout and scaling ---------------------------------------------------------------------------------

def test_to_nchw_reads_grey_channels_last_and_channels_first_batches():
    grey = np.arange(2 * 5 * 7).reshape(2, 5, 7)
    np.testing.assert_array_equal(T.to_nchw(grey)[:, 0], grey)
    hwc = np.random.default_rng(0).random((2, 5, 7, 3))
    chw = T.to_nchw(hwc)
    assert chw.shape == (2, 3, 5, 7)
    np.testing.assert_array_equal(chw[1, 2], hwc[1, :, :, 2])
    assert T.to_nchw(chw) is chw
    assert T.to_nchw(np.zeros((2, 3, 5, 3)), layout="NHWC").shape == (2, 3, 3, 5)
    with pytest.raises(ValueError, match="layout"):
        T.to_nchw(np.zeros((2, 5, 7, 4)))
    with pytest.raises(ValueError, match="does not fit"):
        T.to_nchw(np.zeros((2, 5, 7)), layout="NCHW")


def test_to_float_scales_uint8_to_unit_range_in_nchw():
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)           # (1, 2, 2) grey
    out = T.ToFloat()(images)
    assert out.dtype == np.float32 and out.shape == (1, 1, 2, 2)
    np.testing.assert_allclose(out[0, 0], [[0, 1], [0.2, 0.4]], rtol=1e-6)
    np.testing.assert_array_equal(T.ToFloat(scale=1.0)(images)[0, 0], images[0])


def test_normalize_fitted_on_data_gives_it_zero_mean_and_unit_std_per_channel():
    rng = np.random.default_rng(0)
    images = (rng.random((50, 8, 8, 3)) * [50, 100, 200] + [10, 20, 30]).astype(np.uint8)   # NHWC uint8
    normalize = T.Normalize.fit(images, scale=1 / 255)
    out = normalize(T.ToFloat()(images))
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-5)
    with pytest.raises(ValueError, match="channels"):
        normalize(np.zeros((2, 1, 8, 8)))


def test_subtract_mean_image_removes_the_per_pixel_mean():
    images = np.random.default_rng(0).integers(0, 256, (40, 6, 6), dtype=np.uint8)
    subtract = T.SubtractMeanImage.fit(images, scale=1 / 255)
    out = subtract(T.ToFloat()(images))
    assert subtract.mean_image.shape == (1, 6, 6)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-6)
    with pytest.raises(ValueError, match="before cropping"):
        subtract(np.zeros((2, 1, 4, 4)))


def test_transforms_leave_a_read_only_input_untouched(colour):
    colour.flags.writeable = False
    before = colour.copy()
    pipeline = T.Compose([T.RandomCrop(8, padding=2), T.RandomHorizontalFlip(), T.ColorJitter(0.4, 0.4, 0.4)])
    pipeline(colour, replay())
    np.testing.assert_array_equal(colour, before)


def test_compose_with_the_same_seed_gives_the_same_batch(colour):
    basis = T.pca_color_basis(colour)
    pipeline = T.Compose([T.RandomResizedCrop(8), T.RandomHorizontalFlip(), T.PCAColorNoise(*basis)])
    np.testing.assert_array_equal(pipeline(colour, replay(3)), pipeline(colour, replay(3)))
    assert not np.array_equal(pipeline(colour, replay(3)), pipeline(colour, replay(4)))


# ---- geometry ---------------------------------------------------------------------------------------------

def test_pad_adds_a_border_of_the_fill_value():
    out = T.Pad((1, 2), value=7)(np.ones((2, 3, 3), dtype=np.uint8))
    assert out.shape == (2, 1, 5, 7) and out.dtype == np.uint8
    assert out.sum() == 2 * (9 + 7 * (35 - 9))


def test_random_crop_with_padding_reaches_every_offset_about_equally_often():
    crop, n = T.RandomCrop(8, padding=2), 20000
    top, left = crop.sample(n, 12, 12, replay())                     # padded 12×12, offsets 0..4
    counts = np.zeros((5, 5))
    np.add.at(counts, (top, left), 1)
    assert counts.min() > 0
    np.testing.assert_allclose(counts / n, 1 / 25, atol=tolerance(1 / 25, n))


def test_random_crop_returns_the_padded_window_at_the_sampled_offset(colour):
    crop = T.RandomCrop(10, padding=3)
    out = crop(colour, replay(5))
    padded = np.pad(colour, ((0, 0), (0, 0), (3, 3), (3, 3)))
    top, left = crop.sample(len(colour), *padded.shape[2:], replay(5))
    for n in range(len(colour)):
        np.testing.assert_array_equal(out[n], padded[n, :, top[n]:top[n] + 10, left[n]:left[n] + 10])


def test_center_crop_matches_the_evaluation_module(colour):
    np.testing.assert_array_equal(T.CenterCrop(9)(colour), E.center_crop(colour, 9))
    with pytest.raises(ValueError, match="larger than the images"):
        T.CenterCrop(13)(colour)


@pytest.mark.parametrize("p", [0.5, 0.2])
def test_horizontal_flip_mirrors_a_fraction_p_of_the_images(p):
    n = 20000
    images = np.random.default_rng(0).random((n, 1, 1, 3))
    out = T.RandomHorizontalFlip(p)(images, replay())
    flipped = np.all(out == images[..., ::-1], axis=(1, 2, 3))
    kept = np.all(out == images, axis=(1, 2, 3))
    assert np.all(flipped ^ kept)
    assert abs(flipped.mean() - p) < tolerance(p, n)


def test_resize_matches_the_evaluation_module_and_sets_the_shorter_side(colour):
    for size in (6, 12, 20):
        out = T.Resize(size)(colour)
        assert min(out.shape[2:]) == size
        np.testing.assert_allclose(out, E.resize(colour, size), atol=1e-12)
    assert T.Resize((5, 9))(colour).shape == (6, 3, 5, 9)


def test_resize_of_uint8_rounds_back_to_uint8():
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8), dtype=np.uint8)
    out = T.Resize(5)(images)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.rint(T.Resize(5)(images.astype(np.float64))).astype(np.uint8))


def test_random_resized_crop_boxes_have_area_and_aspect_in_range():
    rrc, n, H, W = T.RandomResizedCrop(32), 5000, 64, 64
    top, left, h, w = rrc.sample(n, H, W, replay())
    assert np.all((top >= 0) & (left >= 0) & (top + h <= H) & (left + w <= W))
    area, aspect = h * w / (H * W), w / h
    # Whole-pixel rounding of w and h moves both quantities slightly past the exact bounds.
    assert area.min() >= 0.08 * 0.9 and area.max() <= 1.0
    assert aspect.min() >= 3 / 4 * 0.95 and aspect.max() <= 4 / 3 * 1.05
    assert area.min() < 0.1 and area.max() > 0.95                    # the whole range is used
    assert np.log(aspect).min() < np.log(0.8) and np.log(aspect).max() > np.log(1.25)


def test_random_resized_crop_is_crop_then_bilinear_resize(colour):
    rrc = T.RandomResizedCrop(4, scale=(0.5, 1.0))                   # reductions only: samples stay in the box
    out = rrc(colour, replay(2))
    top, left, h, w = rrc.sample(len(colour), 12, 16, replay(2))
    for n in range(len(colour)):
        window = colour[n:n + 1, :, top[n]:top[n] + h[n], left[n]:left[n] + w[n]]
        np.testing.assert_allclose(out[n], T.Resize((4, 4))(window)[0], atol=1e-12)


def test_random_resized_crop_falls_back_to_the_central_box_when_no_draw_fits():
    rrc = T.RandomResizedCrop(8, scale=(0.9, 1.0), ratio=(2.0, 3.0))   # too wide to fit a square image
    top, left, h, w = rrc.sample(100, 32, 32, replay())
    assert np.all(w == 32) and np.all(h == 16) and np.all(top == 8) and np.all(left == 0)


def test_scale_jitter_shorter_side_is_uniform_in_the_range_and_equals_resize_then_crop(colour):
    jitter, n = T.ScaleJitter(16, 24, crop=10), 9000
    S, top, left = jitter.sample(n, 12, 16, replay())
    assert S.min() == 16 and S.max() == 24
    np.testing.assert_allclose(np.bincount(S)[16:] / n, 1 / 9, atol=tolerance(1 / 9, n))
    RH, RW = S, np.rint(16 * S / 12)                                  # H = 12 is the shorter side
    assert np.all((top >= 0) & (top + 10 <= RH) & (left >= 0) & (left + 10 <= RW))

    out = jitter(colour, replay(7))
    S, top, left = jitter.sample(len(colour), 12, 16, replay(7))
    for n in range(len(colour)):
        rescaled = T.Resize(int(S[n]))(colour[n:n + 1])[0]
        np.testing.assert_allclose(out[n], rescaled[:, top[n]:top[n] + 10, left[n]:left[n] + 10], atol=1e-12)


def test_scale_jitter_refuses_a_crop_larger_than_the_smallest_scale():
    with pytest.raises(ValueError, match="crop <= min_size"):
        T.ScaleJitter(24, 32, crop=28)


def test_ten_crop_is_five_crops_and_their_mirrors_per_image(colour):
    ten = T.TenCrop(8)(colour)
    assert ten.shape == (6, 10, 3, 8, 8)
    np.testing.assert_array_equal(ten, E.ten_crop(colour, 8).transpose(1, 0, 2, 3, 4))
    np.testing.assert_array_equal(ten[:, 0], colour[:, :, :8, :8])
    np.testing.assert_array_equal(ten[:, 9], ten[:, 4][..., ::-1])
    assert T.FiveCrop(8)(colour).shape == (6, 5, 3, 8, 8)


# ---- colour -----------------------------------------------------------------------------------------------

def test_pca_color_basis_recovers_the_colour_covariance():
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    variances = np.array([0.04, 0.01, 0.0025])
    colours = rng.standard_normal((200 * 64, 3)) * np.sqrt(variances) @ basis.T + 0.5   # pixels with that covariance
    images = colours.reshape(200, 8, 8, 3)
    eigvals, eigvecs = T.pca_color_basis(images)
    np.testing.assert_allclose(eigvals, variances, rtol=0.05)
    np.testing.assert_allclose(np.abs(np.sum(eigvecs * basis, axis=0)), 1, atol=1e-2)   # same axes, up to sign


def test_pca_noise_has_the_basis_as_its_principal_axes_and_std_sigma_times_eigvals():
    basis, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))
    eigvals, n = np.array([0.2, 0.05, 0.01]), 40000
    for std in (0.1, 0.3):
        shift = T.PCAColorNoise(eigvals, basis, std)(np.zeros((n, 3, 1, 1)), replay())[:, :, 0, 0]
        noise_vals, noise_vecs = np.linalg.eigh(np.cov(shift.T))
        noise_vals, noise_vecs = noise_vals[::-1], noise_vecs[:, ::-1]
        np.testing.assert_allclose(np.abs(np.sum(noise_vecs * basis, axis=0)), 1, atol=1e-3)
        np.testing.assert_allclose(np.sqrt(noise_vals), std * eigvals, rtol=0.03)


def test_pca_noise_is_one_colour_per_image_and_for_grey_images_a_brightness_shift():
    images = np.random.default_rng(0).random((500, 1, 4, 4))
    eigvals, eigvecs = T.pca_color_basis(images)
    assert eigvecs.shape == (1, 1) and abs(eigvecs[0, 0]) == 1
    shift = T.PCAColorNoise(eigvals, eigvecs, 0.1)(images, replay()) - images
    np.testing.assert_allclose(shift, shift[:, :, :1, :1] * np.ones_like(shift), atol=1e-12)
    np.testing.assert_allclose(shift[:, 0, 0, 0].std(), 0.1 * eigvals[0], rtol=0.15)


def test_colour_transforms_need_floats():
    with pytest.raises(TypeError, match="ToFloat"):
        T.ColorJitter(0.4)(np.zeros((2, 3, 4, 4), np.uint8), replay())
    with pytest.raises(TypeError, match="ToFloat"):
        T.PCAColorNoise([1.0], [[1.0]])(np.zeros((2, 4, 4), np.uint8), replay())


def test_brightness_factors_are_uniform_in_the_range():
    n = 4000
    out = T.ColorJitter(brightness=0.4)(np.full((n, 3, 2, 2), 0.5), replay())
    factors = out[:, 0, 0, 0] / 0.5
    np.testing.assert_allclose(out, np.broadcast_to(factors[:, None, None, None] * 0.5, out.shape))
    assert 0.6 <= factors.min() < 0.61 and 1.39 < factors.max() <= 1.4
    assert abs(np.mean(factors < 1.0) - 0.5) < tolerance(0.5, n)


def test_contrast_scales_each_images_spread_around_its_mean_luma():
    images = np.random.default_rng(0).random((2000, 1, 4, 4))
    out = T.ColorJitter(contrast=(0.2, 0.5))(images, replay())
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), images.mean(axis=(1, 2, 3)))
    ratio = out.std(axis=(1, 2, 3)) / images.std(axis=(1, 2, 3))
    assert 0.2 <= ratio.min() < 0.21 and 0.49 < ratio.max() <= 0.5


def test_saturation_scales_the_distance_from_grey_and_keeps_the_luma(colour):
    out = T.ColorJitter(saturation=0.4)(colour, replay())
    grey_in, grey_out = T._grey(colour), T._grey(out)
    np.testing.assert_allclose(grey_out, grey_in, atol=1e-12)
    ratio = (out - grey_out) / (colour - grey_in)
    np.testing.assert_allclose(ratio, ratio[:, :1, :1, :1] * np.ones_like(ratio), rtol=1e-9)
    assert np.all((ratio >= 0.6) & (ratio <= 1.4))
    grey_images = np.random.default_rng(0).random((5, 1, 4, 4))
    np.testing.assert_array_equal(T.ColorJitter(saturation=0.4)(grey_images, replay()), grey_images)


def test_colour_jitter_can_clip_to_the_valid_range():
    out = T.ColorJitter(brightness=(1.5, 2.0), clip=(0, 1))(np.full((10, 3, 2, 2), 0.8), replay())
    assert out.max() == 1.0
