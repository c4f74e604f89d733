"""Dual classifier-free guidance on all channels (DESIGN section 4).

``v = v_null + wI * (v_img - v_null) + wT * (v_full - v_img)`` where ``v_full`` sees image and
text, ``v_img`` the image only (null text), ``v_null`` neither. With wI = 1 the null branch
cancels and is not computed; with wI = wT = 1 only the full branch runs.
"""

from __future__ import annotations

import torch


def needed_branches(text_guidance: float, image_guidance: float) -> tuple[str, ...]:
    if image_guidance == 1.0 and text_guidance == 1.0:
        return ("full",)
    if image_guidance == 1.0:
        return ("full", "image")
    return ("full", "image", "null")


def combine(v: dict[str, torch.Tensor], text_guidance: float, image_guidance: float) -> torch.Tensor:
    """Combine the branch velocities named by :func:`needed_branches`."""
    full = v["full"]
    if "image" not in v:
        return full
    if "null" not in v:  # wI = 1: v_img + wT (v_full - v_img)
        return v["image"] + text_guidance * (full - v["image"])
    return v["null"] + image_guidance * (v["image"] - v["null"]) + text_guidance * (full - v["image"])
