"""What every detector is to the rest of defectlens: the :class:`Detector` protocol an
Inspector drives, and the class-side :class:`DetectorClass` protocol the model loader
(:mod:`defectlens.detect.registry`) dispatches to by kind name.

Declared here, below every concrete detector, so the fused detector can name its members
without importing them and the registry can import all detectors without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from defectlens.types import AnomalyResult, Thresholds

if TYPE_CHECKING:
    from defectlens.detect.calibration import NormalStatistics
    from defectlens.taxonomy import Taxonomy

Progress = Callable[[int], None]
"""Called with the number of images just processed; lets the CLI drive a progress bar."""


class Detector(Protocol):
    """What the Inspector needs of a detector (memory bank, grounding, fused, ...).

    Optional beyond this: ``describe() -> dict`` (plain JSON the model card shows: encoder,
    settings, taxonomy) and ``batch_relative`` (true when scores are relative to the batch
    read, which rules the detector out of fusion) and ``min_batch`` (fewest images ``score``
    accepts at once, for detectors that compare the images of a batch; the CLI refuses fewer
    before decoding any) and ``inspect_batch`` (how many images ``inspect`` reads together
    when that is not its default). ``normal_stats`` is what makes a detector
    fusable: :class:`~defectlens.detect.fusion.FusedDetector` recomputes each member's on the
    held-out normal images.
    """

    name: str
    thresholds: Thresholds | None

    # Read-only here (a property): the Inspector never assigns it, so a detector that always has
    # statistics (fused) or never has them (grounding) satisfies the protocol as well.
    @property
    def normal_stats(self) -> NormalStatistics | None:
        """Statistics of held-out normal images' output (None when no normal image was seen)."""
        ...

    def score(self, images: Sequence[np.ndarray], progress: Progress | None = None) -> list[AnomalyResult]:
        """Score and map per RGB image, at the image's resolution."""
        ...

    def save(self, directory: str | Path) -> None:
        """Write the detector's files into ``directory``."""
        ...


@dataclass(frozen=True)
class LoadContext:
    """What a loader may be given besides the folder: only a zero-shot detector uses it (the
    part it reads is named at inspection, not at training)."""

    taxonomy: Taxonomy | None = None
    cue: str | None = None
    """Zero-shot cue (see :mod:`defectlens.detect.grounding.detector`); None: the detector's default."""


class DetectorClass(Protocol):
    """A detector family as the registry holds it: a kind name and a loader."""

    # A plain attribute, not ClassVar: the registry holds class objects, and a class object's
    # attribute is what a protocol member matches.
    name: str
    """The kind written into the model descriptor (``"memory-bank"``)."""

    @classmethod
    def load(cls, directory: str | Path, *, context: LoadContext | None = None) -> Detector:
        """Load a folder the family's ``save`` wrote; :class:`~defectlens.errors.ModelFileError` on any bad file."""
        ...

    @classmethod
    def needs_taxonomy(cls, directory: str | Path) -> bool:
        """True when the folder cannot be loaded without the part's taxonomy (``context.taxonomy``)."""
        ...
