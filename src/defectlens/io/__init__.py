"""Input and output: decoding images safely, atomic file writes, dataset folder layout."""

from defectlens.io.atomic import (
    atomic_directory,
    atomic_write,
    clean_stale_temporaries,
    write_bytes_atomic,
    write_json_atomic,
    write_model_files,
    write_text_atomic,
)
from defectlens.io.dataset import Category, FolderImages, LabelledImage, images_below, list_images, load_category
from defectlens.io.images import (
    IMAGE_FORMATS,
    IMAGE_SUFFIXES,
    ImageFiles,
    as_rgb_image,
    image_area,
    load_image,
    load_mask,
    png_bytes,
    read_image,
    shape_of,
    size_refusal,
    take,
)

__all__ = [
    "IMAGE_FORMATS",
    "IMAGE_SUFFIXES",
    "Category",
    "FolderImages",
    "ImageFiles",
    "LabelledImage",
    "as_rgb_image",
    "atomic_directory",
    "atomic_write",
    "clean_stale_temporaries",
    "image_area",
    "images_below",
    "list_images",
    "load_category",
    "load_image",
    "load_mask",
    "png_bytes",
    "read_image",
    "shape_of",
    "size_refusal",
    "take",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_model_files",
    "write_text_atomic",
]
