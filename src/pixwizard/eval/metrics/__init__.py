"""Evaluation metrics for every PixWizard task (conventions are stated in each module).

- ``image``: psnr, ssim, psnr_y, ssim_y, masked_psnr, preserve_psnr (uint8 RGB, range 255)
- ``grounding``: RefSegAccumulator (cIoU, gIoU), box_iou, BoxAccuracy (xyxy, IoU >= 0.5)
- ``depth``: depth_metrics (AbsRel, RMSE, delta1; alignment none/median/lstsq/lstsq_inverse)
- ``normals``: normal_metrics, NormalAccumulator (degrees; pct within 11.25/22.5/30)
- ``semantic``: ConfusionMatrix (mIoU over present classes, pixel accuracy)
- ``edges``: edge_f1 (dilation matching with a pixel tolerance)
- ``embedding``: ClipScorer (CLIP-I, CLIP-T), DinoScorer (local weights only)
- ``faithfulness``: colour_position_accuracy (world control / text-to-image, no weights)
- ``blockiness``: blockiness (the patch grid's visibility: border over inside gradient)
- ``distribution``: fid_kid, FidKidAccumulator (torchmetrics; local Inception weights only)
- ``registry``: METRICS, the table a harness scores by name
"""

from .blockiness import blockiness
from .depth import DepthErrors, align_depth, depth_metrics
from .distribution import FidKid, FidKidAccumulator, fid_kid
from .edges import binarize_edges, edge_f1
from .embedding import ClipScorer, DinoScorer
from .errors import MetricUnavailable
from .faithfulness import colour_position_accuracy
from .grounding import BoxAccuracy, RefSegAccumulator, box_hit, box_iou, mask_iou
from .image import masked_psnr, preserve_psnr, psnr, psnr_y, rgb_to_y, ssim, ssim_y
from .normals import NormalAccumulator, NormalErrors, angular_errors, normal_metrics
from .registry import METRICS, MeanOf, MetricSpec, ViewOf, metric
from .semantic import ConfusionMatrix

__all__ = [
    "METRICS", "MetricSpec", "MeanOf", "ViewOf", "metric", "MetricUnavailable",
    "psnr", "ssim", "psnr_y", "ssim_y", "rgb_to_y", "masked_psnr", "preserve_psnr",
    "mask_iou", "RefSegAccumulator", "box_iou", "box_hit", "BoxAccuracy",
    "depth_metrics", "align_depth", "DepthErrors",
    "angular_errors", "normal_metrics", "NormalAccumulator", "NormalErrors",
    "ConfusionMatrix", "edge_f1", "binarize_edges",
    "ClipScorer", "DinoScorer", "fid_kid", "FidKid", "FidKidAccumulator",
    "colour_position_accuracy", "blockiness",
]
