"""Photo triplet generators (restoration, edges, styles, inpainting) over real photographs.

``PHOTO_GENERATORS[task](clean, rng) -> Sample`` for each of the 30 photo task ids, and
``prepare_photo(img, size, rng)`` for the aligned source crop. See ``registry``.
"""

from pixwizard.data.photo.registry import (DETERMINISTIC_TASKS, PHOTO_GENERATORS, PHOTO_TASKS,
                                           RESTORATION_TASKS, prepare_photo)

__all__ = ["DETERMINISTIC_TASKS", "PHOTO_GENERATORS", "PHOTO_TASKS", "RESTORATION_TASKS", "prepare_photo"]
