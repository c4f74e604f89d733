"""PixWizard: one flow-matching DiT for instruction-driven image-to-image work."""

__version__ = "0.1.0"
