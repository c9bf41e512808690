"""Is this the part at all? A check on the whole frame, beside the memory bank's verdict.

A camera that sends noise, or the wrong part under it, must never pass as a good part. Flat frames
score far above every threshold, but a frame of sensor noise lifts a cookie's map everywhere
without raising its top 1 % above a normal cookie's, and passed as good. What tells such frames
apart is the image as a whole: its patch features averaged over the image lie far outside a
Gaussian of the normal images' averages (the statistic of :mod:`~defectlens.detect.global_score`,
in units of the normal images' own out-of-fold spread). In ``benchmarks/frame_check_study.py``
a limit of :data:`LIMIT_FACTOR` times the normal images' largest out-of-fold value stopped every
faulty frame and every image of another shared part on all four shared parts, and passed every
good test image but one of 352 magnetic tiles; three times let cookie's noise frame through.

An image over the limit is judged defective whatever its score, with a one-line reason.

Below the limit the same distance tells of drift: a line whose camera loses focus, or whose light or
position changes, moves every image away from the normal ones before any single image crosses the
limit, and its false alarms rise first (a probe's cookies blurred by σ = 2: 9 of 14 good ones flagged,
none over the limit). :func:`drift_note` reads it over a batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from defectlens.descriptor import FRAME_REASON
from defectlens.detect.global_score import GlobalScore

LIMIT_FACTOR = 2.0
"""The limit, in multiples of the normal images' largest out-of-fold distance (in units)."""
MIN_IMAGES = 30
"""Fewest normal images a frame check is fitted on. Its limit rests on the largest of their
out-of-fold distances, a poor guide with a dozen images (on 12 synthetic textures it stood at 2.1
units and a 16-pixel square lifted a part to 7-10); measured down to cookie's 31."""
TENSOR_PREFIX = "frame_check_"
DRIFT_MIN_IMAGES = 8
"""Fewest images :func:`drift_note` judges: of eight normal images, five beyond their 98th percentile happen about twice in
ten million batches."""
DRIFT_UNITS = 1.0
"""The frame distance (:attr:`~defectlens.types.Inspection.frame_units`) beyond which an image is further from the normal
images than 49 in 50 of those are (their 98th percentile, out of fold)."""


def drift_note(frame_units: Sequence[float | None], unlike_normal: Sequence[bool] | None = None, labelled_good: bool = False) -> str | None:
    """What to say of a batch whose images, as a whole, have moved away from the normal ones the model was fitted on —
    more than half of them beyond :data:`DRIFT_UNITS` — or None (fewer than :data:`DRIFT_MIN_IMAGES` distances known).
    ``labelled_good``: the images are good parts by their labels (`evaluate`'s), so no defect is offered as the cause.
    ``unlike_normal``: for each image, whether the frame check (or the colour check) found it unlike every normal one;
    when any of those beyond are, the batch may hold another part, and the note asks so rather than speak of a refit
    (regression probe: nine commutators given to the cookie model were told to refit).

    Measured by ``benchmarks/drift_study.py`` (docs/measurements.md, "A line that drifts from the fit"): on cookie,
    commutator and magnetic tile, good, defective and harmlessly changed images (gain ±15 %, JPEG quality 70) stay under 1,
    and every blur that raises false alarms crosses it. Ball screw drive's shiny surface crosses it with its defective
    parts (a median of 1.07) and with a blur or recompression that flags nothing, which the note's first words allow for."""
    flags = list(unlike_normal) if unlike_normal is not None else [False] * len(frame_units)
    known = [(float(u), bool(f)) for u, f in zip(frame_units, flags, strict=True) if u is not None]
    beyond = [f for u, f in known if u > DRIFT_UNITS]
    # More than half by count (the median over 1 had said "4 of 8" of a batch whose middle two straddled it).
    if len(known) < DRIFT_MIN_IMAGES or not 2 * len(beyond) > len(known):
        return None
    said = (f"{len(beyond)} of {len(known)} images lie further from the normal images, as a whole, than 49 in 50 of those do "
            f"(median frame distance {float(np.median([u for u, _ in known])):.1f})")
    if any(beyond):
        # Any of them: a refit on a batch holding other parts' images would learn them (regression probe round 2: 4 of 9
        # were commutators, and the note advised a refit).
        unlike = "all" if all(beyond) else sum(beyond)  # "1490 of 1950 …, 1490 of them" had said the count twice (scale probe)
        return (f"{said}, {unlike} of them unlike every normal one: another part, the wrong model, or a camera out of focus "
                "or faulty? Check what is under the camera, its focus and light, and which model judges it before trusting these "
                + ("figures" if labelled_good else "verdicts"))
    # No refit advised outright: on frames out of focus it would learn the blur.
    if labelled_good:
        # Good parts by their labels (evaluate's): no large defect explains it (regression probe 2026-12-06).
        return (f"{said}: the camera's focus, the light or the part's position has changed since the fit — these figures are "
                "of the camera as it is now; refit only if the line's images are meant to look so from now on")
    return (f"{said}: unless most of these parts bear large defects, the camera's focus, the light or the part's position "
            "has changed since the fit — check them before trusting these verdicts; refit only if the line's images are meant to "
            "look so from now on")


@dataclass(frozen=True)
class FrameCheck:
    """The Gaussian of normal images' averaged features and the limit beyond which a frame is
    unlike all of them."""

    gaussian: GlobalScore
    limit: float
    """In the Gaussian's units: :data:`LIMIT_FACTOR` times the largest normal out-of-fold distance."""

    @classmethod
    def fit(cls, pooled: np.ndarray, seed: int = 0) -> FrameCheck | None:
        """Fit on the normal images' pooled features (N, C); None with fewer than
        :data:`MIN_IMAGES` images or features that do not vary."""
        if len(pooled) < MIN_IMAGES:
            return None
        try:
            return cls.on(*GlobalScore.fit(pooled, seed))
        except ValueError:
            return None

    @classmethod
    def on(cls, gaussian: GlobalScore, out_of_fold: np.ndarray) -> FrameCheck | None:
        """The check on a Gaussian already fitted (the global score's, when it is on: one fit, one
        distance per image for both) with its normal images' out-of-fold units; None with fewer
        than :data:`MIN_IMAGES` of them."""
        if len(out_of_fold) < MIN_IMAGES:
            return None
        return cls(gaussian, LIMIT_FACTOR * float(np.max(out_of_fold)))

    def reasons(self, pooled: np.ndarray, units: np.ndarray | None = None) -> list[str | None]:
        """For each image's pooled features (N, C): why it is unlike the normal images, or None
        (``units``: their distances, when the caller has them already)."""
        return [
            None if u <= self.limit else f"{FRAME_REASON} ({u:.1f} against a limit of {self.limit:.1f}): "
            "a large defect, another part, or a faulty frame?"
            for u in (self.gaussian.units(pooled) if units is None else units)
        ]

    def tensors(self, shared: GlobalScore | None = None) -> dict[str, torch.Tensor]:
        """Its numbers as tensors for the model file; only the limit when its Gaussian is ``shared``
        (the global score's, saved with it)."""
        own = {} if shared is not None and self.gaussian is shared else self.gaussian.tensors(TENSOR_PREFIX)
        return {**own, f"{TENSOR_PREFIX}limit": torch.tensor([self.limit], dtype=torch.float64)}

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor], feature_dim: int, shared: GlobalScore | None = None) -> FrameCheck | None:
        """Inverse of :meth:`tensors` (``shared``: the global score read from the same file); None
        when the file holds none (models saved before it, or fitted on too few images). Raises
        ``ValueError`` when it is damaged."""
        gaussian = GlobalScore.from_tensors(tensors, feature_dim, TENSOR_PREFIX)
        limit = tensors.get(f"{TENSOR_PREFIX}limit")
        if gaussian is None and limit is None:
            return None
        if gaussian is None and limit is not None:
            gaussian = shared  # saved as the global score's (see tensors)
        if gaussian is None or limit is None or limit.shape != (1,) or not float(limit[0]) > 0:
            raise ValueError("the frame check is incomplete")
        return cls(gaussian, float(limit[0]))
