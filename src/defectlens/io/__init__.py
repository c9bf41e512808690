"""Input and output: decoding images safely, atomic file writes, dataset folder layout."""

from defectlens.io.atomic import atomic_write, write_bytes_atomic, write_json_atomic, write_text_atomic
from defectlens.io.dataset import Category, LabelledImage, list_images, load_category
from defectlens.io.images import IMAGE_SUFFIXES, load_image, load_mask

__all__ = [
    "IMAGE_SUFFIXES",
    "Category",
    "LabelledImage",
    "atomic_write",
    "list_images",
    "load_category",
    "load_image",
    "load_mask",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]
