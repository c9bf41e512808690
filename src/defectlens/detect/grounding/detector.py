"""The grounding model as a detector of one part: what ``defectlens inspect`` runs when it is
given a grounding model and no normal images of the part exist.

The model reads an image with the part's vocabulary (object name and defect descriptions from
its taxonomy) and returns, per pixel, the probability of the ``SEG_DEFECT`` token. With no
normal images there is nothing to calibrate on, so the decision thresholds are the natural
ones of a probability: 0.5 for the image score and for pixels (override them with
:meth:`~defectlens.inspector.Inspector.set_thresholds` once a few labelled images exist).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from defectlens.detect.grounding.model import GroundingModel
from defectlens.taxonomy import Taxonomy
from defectlens.types import AnomalyResult, Thresholds

PROBABILITY_THRESHOLD = 0.5
"""SEG_DEFECT more likely than SEG_NORMAL."""


class GroundingDetector:
    """Zero-shot detector: a :class:`GroundingModel` bound to one part's taxonomy."""

    name = "grounding"

    def __init__(self, model: GroundingModel, taxonomy: Taxonomy, where: str | Path | None = None):
        # A type without a sentence could never be named: fail now, not per image.
        taxonomy.require_descriptions(where)
        self.model = model
        self.taxonomy = taxonomy
        self.thresholds: Thresholds | None = Thresholds(PROBABILITY_THRESHOLD, PROBABILITY_THRESHOLD, source="token-probability")
        self.normal_stats = None
        """No normal images were seen: overlays use the probability scale itself."""

    def score(self, images: Sequence[np.ndarray], progress: Callable[[int], None] | None = None) -> list[AnomalyResult]:
        """SEG_DEFECT probability map and image score per RGB image, with the per-type maps attached."""
        results = self.model.predict(images, self.taxonomy, progress)
        return [AnomalyResult(r.score, r.anomaly_map, grounding=r) for r in results]

    def save(self, directory: str | Path) -> None:
        """Write the grounding model's files (the taxonomy is given again at load)."""
        self.model.save(directory)
