"""PixWizard: one flow-matching DiT for instruction-driven image-to-image work.

``from pixwizard import PixWizardPipeline`` is the Python entry (diffusers-style names work too:
``num_inference_steps``, ``guidance_scale``, ``image_guidance_scale``, ``generator``,
``output_type="pil"``). The pipeline is imported on first use, so ``import pixwizard`` (and the
CLI's start-up) stays light.
"""

__version__ = "0.1.0"

__all__ = ["PixWizardPipeline", "PixWizardResult", "__version__"]

_LAZY = {"PixWizardPipeline": "pixwizard.pipeline", "PixWizardResult": "pixwizard.pipeline"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pixwizard' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
