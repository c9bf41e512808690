"""The detector families a model folder can hold, by the kind name its descriptor records.

Adding a detector family is one entry in :data:`DETECTORS`: a class with a ``name`` (the
kind), ``load(directory, *, context=None)`` and ``needs_taxonomy(directory)`` (see
:class:`~defectlens.detect.base.DetectorClass`). The Inspector's loader and the fused
detector's member loader both dispatch through :func:`load_detector`.
"""

from __future__ import annotations

from pathlib import Path

from defectlens.detect.base import Detector, DetectorClass, LoadContext
from defectlens.detect.batch_scoring import BatchScoringDetector
from defectlens.detect.discriminator import DiscriminatorDetector
from defectlens.detect.fusion import FusedDetector
from defectlens.detect.grounding.detector import GroundingDetector
from defectlens.detect.memory_bank import MemoryBankDetector
from defectlens.errors import ModelFileError

DETECTORS: dict[str, DetectorClass] = {
    MemoryBankDetector.name: MemoryBankDetector,
    GroundingDetector.name: GroundingDetector,
    FusedDetector.name: FusedDetector,
    DiscriminatorDetector.name: DiscriminatorDetector,
    BatchScoringDetector.name: BatchScoringDetector,
}
"""Kind name (as written in a model descriptor) -> detector class."""


def detector_class(kind: str, where: str | Path | None = None) -> DetectorClass:
    """The class registered for ``kind``; :class:`ModelFileError` naming the known kinds otherwise."""
    found = DETECTORS.get(kind)
    if found is None:
        raise ModelFileError(
            f"unknown detector kind {kind!r} (this defectlens knows {', '.join(sorted(DETECTORS))})",
            where,
            "upgrade defectlens, or re-fit the model",
        )
    return found


def load_detector(kind: str, directory: str | Path, context: LoadContext | None = None, where: str | Path | None = None) -> Detector:
    """Load the detector of ``kind`` saved in ``directory`` (``where``: the file naming the kind, for messages)."""
    return detector_class(kind, where).load(Path(directory), context=context)
