"""encode: images -> aligned multi-level patch features (EfficientNet-Lite, offline weights).

Public surface: :class:`PatchEncoder`, :class:`EncoderConfig`, :class:`EncodedBatch`, the canvas
helpers that map between original pixels and the network canvas, and the weight loader.
"""

from defectlens.encode.canvas import CanvasSpec, Placement, footprint_grid, map_to_original, mask_to_grid, place
from defectlens.encode.efficientnet import BACKBONES, DEFAULT_BACKBONE, EfficientNetLite, load_efficientnet_lite
from defectlens.encode.features import EncodedBatch, EncoderConfig, PatchEncoder, fuse_levels

__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "CanvasSpec",
    "EfficientNetLite",
    "EncodedBatch",
    "EncoderConfig",
    "PatchEncoder",
    "Placement",
    "footprint_grid",
    "fuse_levels",
    "load_efficientnet_lite",
    "map_to_original",
    "mask_to_grid",
    "place",
]
