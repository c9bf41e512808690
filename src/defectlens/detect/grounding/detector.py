"""The grounding model as a detector of one part: what ``defectlens inspect`` runs when it is
given a grounding model and no normal images of the part exist.

Two zero-shot cues can decide, chosen by ``cue``:

* ``token`` — the ``SEG_DEFECT`` probability of each pixel. Its units are fixed (a
  probability), so it works on a lone image; thresholds 0.5.
* ``batch`` — mutual scoring: how rare each patch is across the other images read in the same
  batch (none of them needs to be known normal).
* ``both`` — the two maps, each put in robust units of the batch, averaged.

``batch`` is the default (:data:`DEFAULT_CUE`, chosen on the benchmark).

``batch`` and ``both`` speak *batch-relative* units: every map is turned into robust z-scores
over the batch's pixels, ``(x − median) / (1.4826 · MAD)``, and every image score into robust
z-scores over the batch's image scores. An image (or pixel) is defective when it stands more
than 3 robust standard deviations above the batch's typical one — the classic outlier rule —
so no normal image and no label is needed. They need a batch of at least
:data:`MIN_BATCH` images of the part; with fewer, use ``token``. A batch in which most parts
are defective in the same way defeats them (what is common looks normal).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from defectlens.detect.base import LoadContext
from defectlens.detect.batch_scoring import mixed_shapes_note
from defectlens.detect.grounding.model import GroundingModel
from defectlens.detect.maps import MIN_BATCH, batch_relative_maps, batch_relative_scores, image_score
from defectlens.errors import ConfigError, ModelFileError
from defectlens.io.atomic import read_model_json, write_json_atomic
from defectlens.io.images import shape_of
from defectlens.taxonomy import Taxonomy, parse_taxonomy
from defectlens.types import AnomalyResult, GroundingResult, Thresholds

PROBABILITY_THRESHOLD = 0.5
"""SEG_DEFECT more likely than SEG_NORMAL."""
OUTLIER_THRESHOLD = 3.0
"""Robust z-score above which a batch-relative score is an outlier."""
CUES = ("token", "batch", "both")
DEFAULT_CUE = "batch"
"""Measured best of the three on the held-out categories whose batches mix good and
defective parts (commutator, magnetic tile): trained on only two other categories, the token
map transfers less well than the training-free batch cue, and averaging it in lowers the
result. On steel strip, where every image is defective, ``token`` and ``both`` do better —
the case the batch cue cannot handle (see the module notes)."""
PART_FILE = "part.json"
"""Written beside a grounding model bound to one part (inside a fused model): its taxonomy and cue."""
PART_FORMAT = "defectlens.grounding-part"
PART_FORMAT_VERSION = 1
_TOP_FRACTION = 0.01
"""Share of a batch-relative map whose mean is the image score (steadier than the maximum)."""


def results_for_cue(results: Sequence[GroundingResult], cue: str) -> list[AnomalyResult]:
    """Detector output of one batch's grounding results under ``cue`` (see the module notes)."""
    if cue == "token":
        return [AnomalyResult(r.score, r.anomaly_map, grounding=r) for r in results]
    batch_maps = [r.batch_map for r in results if r.batch_map is not None]
    if len(batch_maps) != len(results):
        raise ValueError("batch cues need results read as a batch (batch_map is missing)")
    maps = batch_relative_maps(batch_maps)
    if cue == "both":
        token = batch_relative_maps([r.anomaly_map for r in results])
        # Re-standardise the average: the decision stays "3 robust sigmas above the batch".
        maps = batch_relative_maps([0.5 * a + 0.5 * b for a, b in zip(token, maps, strict=True)])
    scores = np.array([image_score(m, _TOP_FRACTION) for m in maps])
    return [AnomalyResult(float(z), m, grounding=r) for z, m, r in zip(batch_relative_scores(scores), maps, results, strict=True)]


class GroundingDetector:
    """Zero-shot detector: a :class:`GroundingModel` bound to one part's taxonomy."""

    name = "grounding"

    def __init__(
        self, model: GroundingModel, taxonomy: Taxonomy, where: str | Path | None = None, cue: str = DEFAULT_CUE
    ):
        if cue not in CUES:
            raise ConfigError(f"unknown zero-shot cue {cue!r}", where, f"use one of {', '.join(CUES)}")
        # A type without a sentence could never be named: fail now, not per image.
        taxonomy.require_descriptions(where)
        self.model = model
        self.taxonomy = taxonomy
        self.cue = cue
        limit = PROBABILITY_THRESHOLD if cue == "token" else OUTLIER_THRESHOLD
        self.thresholds: Thresholds | None = Thresholds(
            limit, limit, source="token-probability" if cue == "token" else "batch-outlier"
        )
        self.normal_stats = None
        """No normal images were seen: overlays use the detector's own scale."""

    def score(self, images: Sequence[np.ndarray], progress: Callable[[int], None] | None = None) -> list[AnomalyResult]:
        """Score and map per RGB image, with the model's per-type maps attached.

        With the ``batch`` or ``both`` cue, ``images`` are one batch of the same part (at least
        :data:`MIN_BATCH`); scores and maps are in robust z-scores of that batch.
        """
        if self.cue != "token" and len(images) < MIN_BATCH:
            raise ConfigError(
                f"the {self.cue!r} cue compares the images of a batch and got {len(images)} "
                f"(it needs at least {MIN_BATCH} of the same part)",
                None,
                "inspect more images at once, or use the token cue (--cue token) for single images",
            )
        results = results_for_cue(self.model.predict(images, self.taxonomy, progress), self.cue)
        if self.cue != "token" and (shapes := mixed_shapes_note([(s[1], s[0]) for s in (shape_of(images, i) for i in range(len(images)))])):
            # Said as batch scoring says it: a 4000×200 strip among cookies had been typed "pitting" without a word (probe 2026-12-07).
            results = [replace(r, batch_warning="; ".join(filter(None, (r.batch_warning, shapes)))) for r in results]
        return results

    @property
    def min_batch(self) -> int:
        """Fewest images :meth:`score` accepts at once (1 with the token cue)."""
        return 1 if self.cue == "token" else MIN_BATCH

    @property
    def batch_relative(self) -> bool:
        """True when scores are in units of the batch read (``batch``/``both`` cues): such
        scores cannot be put on a fixed scale by normal statistics, so they cannot be fused."""
        return self.cue != "token"

    def describe(self) -> dict:
        """What the model card says about this detector (plain JSON)."""
        return {
            "encoder": self.model.config.encoder.to_json(),
            "cue": self.cue,
            "text_model": self.model.config.text_model,
            "taxonomy": self.taxonomy.to_json(),
        }

    def save(self, directory: str | Path) -> None:
        """Write the grounding model's files and ``part.json`` (the taxonomy and cue it is
        bound to), so the folder loads on its own."""
        out = Path(directory)
        self.model.save(out)
        write_json_atomic(
            out / PART_FILE,
            {"format": PART_FORMAT, "format_version": PART_FORMAT_VERSION, "taxonomy": self.taxonomy.to_json(), "cue": self.cue},
        )

    @classmethod
    def needs_taxonomy(cls, directory: str | Path) -> bool:
        """True for a bare grounding model (``defectlens train-grounding``): no part is bound to it yet."""
        return not (Path(directory) / PART_FILE).is_file()

    @classmethod
    def load(cls, directory: str | Path, *, context: LoadContext | None = None) -> GroundingDetector:
        """Load a grounding model and bind it to a part: ``context.taxonomy`` when given, else
        the ``part.json`` :meth:`save` wrote; a bare model without a taxonomy is refused."""
        root = Path(directory)
        context = context or LoadContext()
        taxonomy, cue, where = context.taxonomy, context.cue, root
        if not cls.needs_taxonomy(root):
            meta = read_model_json(root, PART_FILE, PART_FORMAT, PART_FORMAT_VERSION, "grounding part binding", "`defectlens fit --grounding`")
            where = root / PART_FILE
            try:
                taxonomy = taxonomy or parse_taxonomy(meta["taxonomy"], where, require_descriptions=True)
                cue = cue or str(meta["cue"])
            except (KeyError, TypeError, ValueError, ConfigError) as exc:
                raise ModelFileError(f"invalid part binding ({exc})", where, "re-fit with `defectlens fit --grounding`") from None
        if taxonomy is None:
            raise ConfigError(
                "a grounding model reads a part through its taxonomy (object name and defect descriptions)",
                root,
                "pass the part's taxonomy.json (`inspect --taxonomy`; `evaluate` reads the category's own)",
            )
        return cls(GroundingModel.load(root), taxonomy, where, cue or DEFAULT_CUE)
