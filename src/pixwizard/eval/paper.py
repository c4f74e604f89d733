"""The PixWizard paper's reported numbers (DESIGN section 8), each tied to the protocol it belongs to.

A number may be shown beside ours only when our suite follows the same protocol
(``SuiteConfig.protocol`` equals ``PaperNumber.protocol``: same benchmark, split, ground truth and
metric). Our own generated suites (world-heldout, photo-restoration, quick) follow no paper
protocol: the report marks the paper column "n/a (different protocol)" there. Benchmark suites
whose protocol is not the paper's, or where the paper leaves the evaluation set open, name no
protocol either; ``WITHHELD`` says why for each, and every benchmark suite's description states
the paper's protocol (DESIGN section 8 is our only source for it).

Units follow our metrics: PSNR in dB, SSIM in [0, 1], RMSE in metres, angles in degrees, mIoU and
cIoU as fractions in [0, 1] (the paper prints percentages: 32.76 % -> 0.3276), FID unitless.
The paper does not state the colour space of its PSNR/SSIM: ``colour_space_stated=False`` and the
report shows the paper number beside both our RGB (``psnr``) and Y (``psnr_y``) values.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperNumber:
    """One number from the paper: ``value`` of ``metric`` on ``task`` under ``protocol``."""

    protocol: str  # e.g. "sidd": the benchmark (and split) the number was measured on
    task: str  # a task id, or a domain for a number pooled over the domain's tasks (MagicBrush)
    metric: str  # our metric name
    value: float
    benchmark: str  # the paper's wording of the benchmark
    system: str = "PixWizard"
    colour_space_stated: bool = True
    note: str = ""


_P = "PixWizard"
_NO_CS = {"colour_space_stated": False}

PAPER_NUMBERS: tuple[PaperNumber, ...] = (
    PaperNumber("sidd", "denoise", "psnr", 38.67, "SIDD", **_NO_CS),
    PaperNumber("sidd", "denoise", "ssim", 0.957, "SIDD", **_NO_CS),
    PaperNumber("sidd", "denoise", "psnr", 38.71, "SIDD", system="Painter", **_NO_CS),
    PaperNumber("sidd", "denoise", "psnr", 39.52, "SIDD", system="PromptIR", **_NO_CS),
    PaperNumber("rain100l", "derain", "psnr", 31.43, "Rain100L", **_NO_CS),
    PaperNumber("rain100l", "derain", "ssim", 0.917, "Rain100L", **_NO_CS),
    PaperNumber("rain100l", "derain", "psnr", 29.87, "Rain100L", system="Painter", **_NO_CS),
    PaperNumber("rain100l", "derain", "psnr", 36.37, "Rain100L", system="PromptIR", **_NO_CS),
    PaperNumber("snow100k-l", "desnow", "psnr", 29.66, "Snow100K-L", **_NO_CS),
    PaperNumber("sots", "dehaze", "psnr", 28.14, "SOTS", **_NO_CS, note="subset not stated by the paper"),
    PaperNumber("lolv2", "lowlight", "psnr", 20.29, "LOLv2", **_NO_CS),
    PaperNumber("gopro", "deblur_motion", "psnr", 24.68, "GoPro", **_NO_CS),
    PaperNumber("gopro", "deblur_motion", "psnr", 29.70, "GoPro", system="InstructIR", **_NO_CS),
    PaperNumber("nyuv2-depth", "depth", "rmse", 0.287, "NYUv2"),
    PaperNumber("nyuv2-depth", "depth", "rmse", 0.288, "NYUv2", system="Painter"),
    PaperNumber("nyuv2-depth", "depth", "rmse", 0.206, "NYUv2", system="DepthAnything"),
    PaperNumber("nyuv2-normals", "normals", "mean_angle", 19.65, "NYUv2"),
    PaperNumber("nyuv2-normals", "normals", "mean_angle", 14.90, "NYUv2", system="Bae et al."),
    PaperNumber("ade20k", "semseg", "miou", 0.3276, "ADE20K"),
    PaperNumber("ade20k", "semseg", "miou", 0.4990, "ADE20K", system="Painter"),
    PaperNumber("refcoco-val", "refseg_overlay", "ciou", 0.4728, "RefCOCO val (overlay)"),
    PaperNumber("refcoco-val", "refseg_overlay", "ciou", 0.4164, "RefCOCO val", system="InstructDiffusion"),
    PaperNumber("refcoco-val", "refseg_overlay", "ciou", 0.7321, "RefCOCO val", system="ReLA"),
    PaperNumber("magicbrush", "editing", "clip_i", 0.884, "MagicBrush", note="all edit turns"),
    PaperNumber("magicbrush", "editing", "dino", 0.876, "MagicBrush", note="all edit turns"),
    PaperNumber("magicbrush", "editing", "clip_i", 0.897, "MagicBrush", system="Emu Edit"),
    PaperNumber("magicbrush", "editing", "dino", 0.879, "MagicBrush", system="Emu Edit"),
    PaperNumber("magicbrush", "editing", "l1", 0.063, "MagicBrush", note="L1: no metric here yet"),
    PaperNumber("multigen-canny", "canny_to_image", "edge_f1", 0.3546, "MultiGen-20M canny F1",
                note="no adapter for this benchmark"),
    PaperNumber("multigen-canny", "canny_to_image", "fid", 15.76, "MultiGen-20M canny FID",
                note="no adapter for this benchmark"),
    PaperNumber("places-inpaint", "inpaint_freeform", "fid", 9.27, "Places FID", note="no Places adapter"),
    PaperNumber("places-outpaint", "outpaint", "fid", 7.54, "Places FID", note="no Places adapter"),
    PaperNumber("coco-fid30k", "t2i", "fid", 9.56, "COCO FID-30K"),
    PaperNumber("coco-fid30k", "t2i", "fid", 9.79, "COCO FID-30K", system="Lumina-Next"),
    # Ablation at 40k steps (Rain100L PSNR / RefCOCO cIoU / NYU RMSE), full model.
    PaperNumber("ablation-40k-rain100l", "derain", "psnr", 30.24, "Rain100L, 40k-step ablation", **_NO_CS),
    PaperNumber("ablation-40k-refcoco", "refseg_overlay", "ciou", 0.4172, "RefCOCO, 40k-step ablation"),
    PaperNumber("ablation-40k-nyuv2", "depth", "rmse", 0.324, "NYUv2, 40k-step ablation"),
)

# Paper protocols no built-in suite may name (its paper column is withheld), and why.
WITHHELD: dict[str, str] = {
    "sidd": "the paper states neither the SIDD set (validation or online benchmark blocks) nor the colour space",
    "sots": "the paper does not state the SOTS subset (indoor or outdoor)",
    "lolv2": "the paper does not state the LOLv2 subset (Real_captured or Synthetic)",
    "nyuv2-normals": "our NYUv2 layout has no normal ground truth: the suite scores against normals derived from "
                     "depth, not the benchmark's",
    "magicbrush": "the paper's split is not stated in our sources; the suite reads dev and has no L1",
    "coco-fid30k": "the suite scores every COCO val2017 caption, not the paper's 30,000",
}

# Our metrics that may sit beside a paper number of metric ``key`` (PSNR colour space unstated).
COMPARABLE: dict[str, tuple[str, ...]] = {"psnr": ("psnr", "psnr_y"), "ssim": ("ssim", "ssim_y")}


def paper_numbers(protocol: str | None, task: str, system: str = _P) -> dict[str, float]:
    """Our metric name -> the paper's number for ``task`` under ``protocol`` ({} for no protocol).

    A number pooled over a domain (``PaperNumber.task`` = the domain) is returned for each of its tasks.
    A number whose colour space the paper leaves open is returned for both our RGB and Y metrics.
    """
    if protocol is None:
        return {}
    from pixwizard.tasks.registry import get_task

    domain = get_task(task).domain
    out: dict[str, float] = {}
    for n in PAPER_NUMBERS:
        if n.protocol == protocol and n.task in (task, domain) and n.system == system:
            for ours in (COMPARABLE.get(n.metric, (n.metric,)) if not n.colour_space_stated else (n.metric,)):
                out[ours] = n.value
    return out


def protocols() -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.protocol for n in PAPER_NUMBERS))
