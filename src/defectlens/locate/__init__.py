"""locate: anomaly map -> mask -> connected regions with geometry and scores, and overlays.

Public surface: :func:`extract_regions`, :func:`default_min_area`, :func:`render_overlay`, :func:`overlay_scale`,
:func:`render_outlines`, :func:`weaker_region_indices`, :func:`weaker_regions`.
"""

from defectlens.locate.overlay import overlay_scale, render_outlines, render_overlay
from defectlens.locate.regions import default_min_area, extract_regions, weaker_region_indices, weaker_regions

__all__ = ["default_min_area", "extract_regions", "overlay_scale", "render_outlines", "render_overlay", "weaker_region_indices", "weaker_regions"]
