"""Batch scoring: parts inspected together score each other (MuSc's idea; Li et al., ICLR 2024).

No normal image and no training: in a batch of images of one part, a normal patch finds
close look-alikes in most other images, a defect only in few. So every patch is scored by
its nearest-neighbour distance to each *other* image of the batch, and the mean over the
closest share of those images (``closest_fraction``, half) is its anomaly value — robust to
a few other images having the same defect in the same place. Steps:

1. **Multi-level features, several neighbourhood sizes** — the encoder's stride-8 and
   stride-16 stages, each averaged over r x r cells for every r in ``radii`` (1, 3, 5) and
   put on the stride-16 grid (:func:`~defectlens.encode.fuse_levels`): r = 1 sees pits, r = 5
   sees blotches. (The stride-16 grid keeps a CPU batch of 16 in seconds; the map is
   smoothed and resized to the image like every other detector's.)
2. **Mutual scoring** — per radius, each patch's distance to its nearest on-image patch of
   each reference image (up to ``max_references`` others, seeded), averaged over the closest
   share; divided by the batch's median patch value so radii (and batches) share one unit,
   "times the typical patch of the batch", then averaged over radii.
3. **Maps relative to the batch at each position** (``position_normalise``) — mutual scores
   run high wherever a part varies most between images (its edges, the ends of a tile), on
   good and bad parts alike. Each smoothed map becomes a robust z-score against the batch's
   maps at the same place on the image (median and MAD per cell of a 64 × 64 grid over each
   image's own footprint, pulled towards the whole batch's with the weight of
   ``position_prior_images``), put back on the batch's units; the image score is the mean of
   its top ``score_top_fraction`` (5 %). The memory bank does the same against its normal
   images (:class:`~defectlens.detect.maps.PositionNormaliser`); here no image is known
   normal, hence the median: half a batch may be defective somewhere.
4. **Image re-scoring over the batch** (MuSc's RsCIN) — each image's score is smoothed with
   the scores of the images it looks most alike as a whole (cosine similarity of mean
   features), averaged over neighbourhood windows ``rescore_windows``: a normal image with a
   noisy spot is pulled towards its normal look-alikes.

Units (``units``): ``batch-outlier`` (default, alone) reports robust z-scores of the batch as
the grounding model's batch cue does — an image or pixel is defective 3 robust sigmas above
the batch's typical one; ``typical-patch`` keeps step 2's unit, which normal statistics can
put on a fixed scale: the one a :class:`~defectlens.detect.fusion.FusedDetector` needs.

**A batch where most parts share one defect** looks normal to mutual scoring (what is common
is normal). It is detected from the same distances: a defect shared by a sub-population is
close in the closest 30 % of references but far in the farthest 30 %, while a normal patch
finds look-alikes in nearly every image. Per image, the mean of the far/close ratio over its
top 5 % of cells, divided by the ratio of its median cell, minus 1; the median over images is
the batch's *shared-pattern ratio*; above
:data:`SHARED_PATTERN_LIMIT` every result carries a warning (measured in
``benchmarks/batch_scoring.py``). Batches of fewer than :data:`~defectlens.detect.maps.MIN_BATCH`
images are refused before anything is encoded.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from defectlens.detect.base import LoadContext, Progress
from defectlens.detect.maps import (
    MIN_BATCH,
    PositionNormaliser,
    batch_relative_maps,
    batch_relative_scores,
    grid_to_results,
    image_score,
)
from defectlens.encode import CanvasSpec, EncodedBatch, EncoderConfig, PatchEncoder, footprint_grid, fuse_levels
from defectlens.errors import ConfigError, ModelFileError
from defectlens.io import ImageFiles
from defectlens.io.atomic import read_model_json, write_json_atomic
from defectlens.io.images import GREY_TOLERANCE, channel_difference, image_digest, is_grey
from defectlens.types import AnomalyResult, Thresholds

FORMAT = "defectlens.batch-scoring"
FORMAT_VERSION = 1
CONFIG_FILE = "batch_scoring.json"
UNITS = ("batch-outlier", "typical-patch")
OUTLIER_THRESHOLD = 3.0
"""Robust z-score above which a batch-relative score is an outlier (the classic rule)."""
SMALL_BATCH = 16
"""Fewer images than this in a batch are scored, but said to be noisy: 5 of 40 good commutators were flagged in batches of
8 (10-14 regions each), 2 of the same 40 in one batch (zero-shot probe 2026-12-06)."""
OTHER_SHAPE = 1.5
"""A batch whose images' aspect ratios fall in two groups apart by more than this factor holds more than one view or part:
said (20 commutators and 20 ball screws in one batch were all judged good, nothing said; zero-shot probe 2026-12-06)."""
SHAPE_GROUP_SPREAD = 2.0
"""... and apart by more than this many times the wider group's own spread (in log aspect ratio), split at the widest gap: a
part whose pictures vary in shape, as magnetic tiles do (aspect ratios 0.36-2.68), is one part."""
SHAPE_TIGHT = 1.05
"""... or split at every gap over :data:`OTHER_SHAPE` into groups each of one picture or of pictures whose aspect ratios are
within this factor (a fixed part's camera: three parts in one batch, or a lone third picture between two groups, had been read
as two wide groups and nothing said; regression probes 2026-12-07). Measured (2026-12-07, 2 000 random batches of each shared
category's images): the extremes rule warned on every magnetic-tile batch (no-normals probe 2026-12-07); these two on 3.2 %
of batches of 8, 0.1 % of 16 and none of 20 or 40, and on every mix of two or three fixed-shape parts more than 1.5x apart
(commutator, ball screw drive, cookie, steel strip; 19 + 1, 10 + 10, 4 + 4, 7 + 1; 4 + 4 + 1, 20 + 20 + 1, 7 + 1 + 1,
20 + 1 + 1, 3 + 3 + 3)."""
CLEAR_COLOUR = 3 * GREY_TOLERANCE
"""Channel difference (:func:`~defectlens.io.images.channel_difference`) a picture of a batch must reach to count as in colour
beside grey ones: a grey part's pictures with a channel 2 to 4 levels off, either side of grey's tolerance, had been told the
camera was set wrong (regression probe 2026-12-07). The colour parts shared here differ by 21 to 31."""
TWIN_RATIO = 0.34
"""A reference whose nearest-cell distances to an image (their 95th percentile) are under this share of that image's 75th
percentile over its references is a near-identical picture of the same part (a camera re-trigger: noise, a JPEG
re-save). Measured (2026-12-06, 16-20 test images of each part plus two copies with ±2 grey levels of noise and JPEG q95):
copies at 0.17-0.19 (cookie), 0.23-0.32 (commutator), 0.21-0.27 (ball screw drive), 0.39-0.45 (magnetic tile, not
caught); distinct parts at 0.88 / 0.86 / 0.41 / 0.37 at the least. The 75th percentile, not the median: with its twins
half its references, an image's median had fallen to theirs (regression probe 2026-12-06). One such copy of a crack had
scored it GOOD (zero-shot probe 2026-12-06)."""
TWO_LOOKS = 0.82
"""Silhouette (cosine) of the batch's pictures split in two by k-means on their mean features (:func:`two_looks`) from which
they are said to be of two kinds or views of parts, where shapes and colour tell nothing. Measured (2026-12-07, the encoder's
first-radius features, batches of 16 / 24 / 48 drawn from each shared part's images, defective ones among them, 20 of each):
one part's batches 0.19–0.53 (commutator, magnetic tile, steel strip), up to 0.73 (cookie) and 0.80 (ball screw drive, two
looks of one part); mixes of two parts (24+24 down to 44+4) 0.80–0.97 where either is a magnetic tile, commutator, cookie or
ball screw drive beside another of them (magnetic tile and commutator, grey both and the tiles' shapes spread wide: 19 of
24 over it), under it for steel strip beside most (0.29–0.80). A mix of magnetic tiles and commutators had scored their cracks
GOOD without a word (regression probe 2026-12-07). Said of batches of :data:`SMALL_BATCH` pictures or more only: in one of 8, 6
ball screws and 2 pitted ones split at 0.88; ball screws flipped, cropped and lit at random split at 0.80–0.81 in 16 and 48
(0.83–0.85 in 8), and a batch of ball screws half of it mirrored is said (a second view). Not a batch of commutators half
mirrored (0.38–0.39: a commutator mirrored looks much as one not, and the batch's crack then scored GOOD unsaid; regression
probe 2026-12-07), nor 16 magnetic tiles beside 4 commutators (0.80): the note is no guarantee that a batch is of one look."""
SHARED_PATTERN_LIMIT = 0.65
"""Shared-pattern ratio above which a batch is said to look alike-anomalous (see the module
notes). Set just above the highest ratio of a normal-only batch measured by
``benchmarks/batch_scoring.py`` (0.63, cookie; 0.07–0.42 on the other parts), so a good lot is
not warned about. That is a weak detector on real parts: of the measured batches where 12 of 16
parts share one defect type only a cookie one exceeds it (ratios 0.10–0.75 against 0.07–0.63
for normal-only batches of the same parts); a synthetic 9-of-12 shared defect gives ~1.5. In the
inspection's batches of 48 no real batch passes it: normal-only 0.06–0.46, 36 of 48 sharing one
type 0.08–0.54."""


SHARED_PATTERN_TOP = 0.05
"""Share of an image's cells, the most sub-population-like, whose far/close ratio is its value."""
SHARED_PATTERN_SHARE = 0.3
"""Share of the references, the closest and the farthest, whose mean distances make a cell's
far/close ratio. Fixed, not ``closest_fraction``: :data:`SHARED_PATTERN_LIMIT` was measured with it."""


def _default_encoder() -> EncoderConfig:
    # The memory bank's stages and exposure standardisation: features it already trusts, so a
    # fused model reads one encoding. Neighbourhoods are applied here (radii), not in the encoder.
    return EncoderConfig(standardize=True)


@dataclass(frozen=True)
class BatchScoringConfig:
    """Settings of the batch-scoring detector (saved with the model)."""

    encoder: EncoderConfig = field(default_factory=_default_encoder)
    side: int = 256
    """Each batch is placed on one canvas of about side² pixels with the batch's median aspect ratio."""
    radii: tuple[int, ...] = (1, 3, 5)
    """Neighbourhood sizes (cells, odd) features are averaged over before comparing."""
    closest_fraction: float = 0.5
    """Share of the reference images, the closest ones, whose distances are averaged."""
    max_references: int = 16
    """Other images each image is compared with (a seeded random choice when the batch is larger)."""
    rescore_windows: tuple[int, ...] = (1, 2, 3)
    """Image re-scoring: for each k, the similarity-weighted mean score of the image and its
    k - 1 most alike images; the windows' results are averaged (1 alone = no re-scoring)."""
    blur_sigma: float = 4.0
    """Gaussian smoothing of the map, in canvas pixels (as the memory bank)."""
    score_top_fraction: float = 0.05
    """The image score is the mean of this top share of the map (before re-scoring)."""
    position_normalise: bool = True
    """Make each map relative to the batch's maps at the same place on the image (robust
    z-scores per position; see the module notes)."""
    position_prior_images: float = 4.0
    """Weight, in images, of the whole batch map's statistics in each position's."""
    units: str = "batch-outlier"
    """See the module notes: 'batch-outlier' (alone) or 'typical-patch' (for fusion)."""
    batch_size: int = 8
    """Images encoded at once."""
    inspect_batch: int = 48
    """Images ``defectlens inspect`` reads together (each still compared with at most
    ``max_references`` others, so the cost per image does not grow with it; the per-position
    statistics and the re-scoring gain images). Mean image AUROC over the four shared
    categories with normal images, five seeded batch orders (``benchmarks/batch_scoring.py``
    and the README): 0.794 in batches of 16, 0.826 in 48, 0.829 in 64, every category higher
    at 48 than at 16. Memory grows with it (a batch's images and full-resolution maps are held
    together), hence 48 rather than 64."""
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.radii or any(r < 1 or r % 2 == 0 for r in self.radii):
            raise ValueError(f"radii must be odd numbers >= 1, got {self.radii}")
        if not 0 < self.closest_fraction <= 1:
            raise ValueError(f"closest_fraction must be in (0, 1], got {self.closest_fraction}")
        if self.max_references < MIN_BATCH - 1:
            raise ValueError(f"max_references must be at least {MIN_BATCH - 1}, got {self.max_references}")
        if not self.rescore_windows or min(self.rescore_windows) < 1:
            raise ValueError(f"rescore_windows must be positive, got {self.rescore_windows}")
        if self.units not in UNITS:
            raise ValueError(f"units must be one of {', '.join(UNITS)}, got {self.units!r}")
        if self.side < 64:
            raise ValueError(f"side must be at least 64, got {self.side}")
        if self.position_prior_images < 0:
            raise ValueError(f"position_prior_images must be >= 0, got {self.position_prior_images}")
        if self.inspect_batch < MIN_BATCH:
            raise ValueError(f"inspect_batch must be at least {MIN_BATCH}, got {self.inspect_batch}")

    def to_json(self) -> dict:
        """Plain-JSON form."""
        d = dict(self.__dict__)
        d.update(encoder=self.encoder.to_json(), radii=list(self.radii), rescore_windows=list(self.rescore_windows))
        return d

    @classmethod
    def from_json(cls, d: dict) -> BatchScoringConfig:
        """Inverse of :meth:`to_json`. Settings saved before per-position maps (or the
        inspection batch size) existed read without them, so a saved model scores as it did."""
        return cls(
            **{
                "position_normalise": False,
                "inspect_batch": 16,
                **d,
                "encoder": EncoderConfig.from_json(d["encoder"]),
                "radii": tuple(d["radii"]),
                "rescore_windows": tuple(d["rescore_windows"]),
            }
        )


@dataclass
class BatchReading:
    """What mutual scoring says about one batch, before units are chosen."""

    grids: torch.Tensor
    """(N, h, w) patch scores in typical-patch units on the comparison grid."""
    raw_scores: np.ndarray
    """(N,) image scores before re-scoring (from ``maps``)."""
    scores: np.ndarray
    """(N,) image scores after re-scoring over the batch."""
    maps: list[np.ndarray]
    """Smoothed maps at each image's own resolution, typical-patch units (relative to the
    batch at each position when the settings say so)."""
    shared_pattern: float
    """Median over images of the far/close reference-distance ratio of their most shared-looking cells, minus 1."""
    with_twin: tuple[int, ...] = ()
    """Images judged without a near-identical picture of theirs in the batch (:func:`twin_references`)."""
    twin_pairs: tuple[tuple[int, int], ...] = ()
    """(image, its near-identical reference) pairs, as :func:`twin_references` found them."""
    looks: tuple[float, int, int] | None = None
    """The batch's pictures split in two by their look (:func:`two_looks`): the split's silhouette and its two groups' sizes."""

    @property
    def warning(self) -> str | None:
        """The one-line warning when the batch looks alike-anomalous, else None."""
        if self.shared_pattern <= SHARED_PATTERN_LIMIT:
            return None
        return (
            f"batch looks alike-anomalous (shared-pattern ratio {self.shared_pattern:.2f} > {SHARED_PATTERN_LIMIT}): "
            "many parts may share one defect, which batch scoring reads as normal — check a few by eye, "
            "or inspect them mixed with known-good parts"
        )


def lot_notes(sizes: Sequence[tuple[int, int]], n_given: int, n_distinct: int, grey: Sequence[bool | None] = (),
              looks: tuple[float, int, int] | None = None) -> list[str]:
    """What to say of a batch whose pictures (near-copies read as one) have these (width, height) ``sizes`` (and are ``grey``,
    in colour (False), or a few levels off grey (None), each), of ``n_given`` images in all and ``n_distinct`` pixel-for-pixel
    distinct ones: its copies, a size too small to compare well, shapes of more than one view or part, grey pictures among
    colour ones or the other way round, or else pictures of two looks (``looks``: :func:`two_looks`)."""
    notes = []
    if n_given > n_distinct:
        notes.append(f"{n_given - n_distinct} of the {n_given} images of this batch are copies of others, pixel for pixel: each picture "
                     "was scored once, and its copies take its result")
    if len(sizes) < SMALL_BATCH:
        notes.append(f"a batch of {len(sizes)} distinct pictures: each is judged against so few others that its verdict and regions "
                     f"are noisy — inspect at least {SMALL_BATCH} of the part together")
    if shapes := mixed_shapes_note(sizes):
        notes.append(shapes)
    elif (greys := sum(g is True for g in grey)) and (colours := sum(g is False for g in grey)):
        # A grey frame of a good colour part read as ten high-severity defects, nothing said of grey; a fitted model says
        # why (no-normals probe 2026-12-07). Pictures are judged against each other: the camera's setting is the cause, the
        # fewer ones the odd ones (one colour picture among grey ones had been told as grey ones; regression probe 2026-12-07).
        # Not beside the shapes' note: parts of other kinds are why.
        odd, usual = ("grey", "colour") if greys <= colours else ("in colour", "grey")
        count = min(greys, colours)
        notes.append(f"{count} of the {len(grey)} pictures of this batch {'is' if count == 1 else 'are'} {odd} and the others "
                     f"{'in ' if usual == 'colour' else ''}{usual}: is the camera set to {usual}? A part's colours are judged against its "
                     f"batch's, so {'a grey one' if odd == 'grey' else 'one in colour'} reads as defective")
    elif looks is not None and looks[0] >= TWO_LOOKS and len(sizes) >= SMALL_BATCH:
        # Said where neither shapes nor colour tell the parts apart: two grey parts of overlapping shapes. Not of a batch said to
        # be too small: 6 ball screws of one look and 2 pitted ones split at 0.88 (regression probe 2026-12-07).
        notes.append(f"the batch's pictures fall into two groups of distinct looks ({looks[1]} and {looks[2]} pictures): parts of two "
                     "kinds or views are judged against each other, and a defect may read as normal — inspect one part, in one view, "
                     "per batch")
    return notes


def two_looks(image_features: torch.Tensor) -> tuple[float, int, int] | None:
    """The batch's pictures, by their mean features (N, C), split in two by k-means on their directions: the split's silhouette
    (cosine; near 1 for two kinds of parts, :data:`TWO_LOOKS`) and the two groups' sizes; None for fewer than 4 pictures."""
    from sklearn.cluster import KMeans  # scikit-learn's: loaded with the first batch
    from sklearn.metrics import silhouette_score

    if len(image_features) < 4:
        return None
    directions = torch.nn.functional.normalize(image_features.double(), dim=1).numpy()
    split = KMeans(2, n_init=5, random_state=0).fit(directions).labels_
    sizes = np.bincount(split, minlength=2)
    if sizes.min() == 0:
        return None
    return float(silhouette_score(directions, split, metric="cosine")), int(sizes.max()), int(sizes.min())


def mixed_shapes_note(sizes: Sequence[tuple[int, int]]) -> str | None:
    """What to say of a batch whose images, compared with each other, are of shapes of more than one view or part (their
    (width, height) ``sizes``), or None: for batch scoring and a grounding model's batch cue alike."""
    aspects = np.log([w / h for w, h in sizes])
    if len(aspects) < 2 or not (_two_shapes(np.sort(aspects)) or _several_shapes(np.sort(aspects))):
        return None
    wide, tall = sizes[int(np.argmax(aspects))], sizes[int(np.argmin(aspects))]
    return (f"the batch's images are of different shapes ({wide[0]}×{wide[1]} and {tall[0]}×{tall[1]}): parts of another view or "
            "kind are judged against each other — inspect one part, in one view, per batch")


def _two_shapes(ordered: np.ndarray) -> bool:
    """Whether sorted log aspect ratios split at their widest gap into two groups of shapes (:data:`SHAPE_GROUP_SPREAD`)."""
    gaps = np.diff(ordered)
    split = int(np.argmax(gaps))
    spread = max(ordered[split] - ordered[0], ordered[-1] - ordered[split + 1])
    return bool(gaps[split] > np.log(OTHER_SHAPE) and gaps[split] > SHAPE_GROUP_SPREAD * spread)


def _several_shapes(ordered: np.ndarray) -> bool:
    """Whether sorted log aspect ratios split at every gap over :data:`OTHER_SHAPE` into groups, each one picture or pictures
    of one shape (:data:`SHAPE_TIGHT`), some of them of two pictures or more."""
    groups = np.split(ordered, np.flatnonzero(np.diff(ordered) > np.log(OTHER_SHAPE)) + 1)
    several = [group for group in groups if len(group) > 1]
    return len(groups) > 1 and bool(several) and all(group[-1] - group[0] <= np.log(SHAPE_TIGHT) for group in several)


def near_copy_groups(pairs: Sequence[tuple[int, int]], sizes: Sequence[tuple[int, int]]) -> list[int]:
    """Each image's picture: the first image of its group of near-identical pictures (``pairs``, joined through each
    other; of one size only), or itself."""
    group = list(range(len(sizes)))

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    for i, j in pairs:
        if sizes[i] == sizes[j]:
            a, b = sorted((root(i), root(j)))
            group[b] = a
    return [root(i) for i in range(len(sizes))]


def _subset_encoded(encoded: EncodedBatch, keep: Sequence[int]) -> EncodedBatch:
    """The images ``keep`` of an encoded batch, on the same canvas."""
    index = torch.as_tensor(list(keep))
    return EncodedBatch(encoded.features[index], [encoded.placements[i] for i in keep], encoded.canvas, [lv[index] for lv in encoded.levels])


def require_batch(n_images: int, what: str = "batch scoring") -> None:
    """Refuse a batch too small to compare its images with each other (one line, with the fix)."""
    if n_images < MIN_BATCH:
        raise ConfigError(
            f"{what} compares the images of a batch and got {n_images} (it needs at least {MIN_BATCH} of the same part)",
            None,
            f"inspect at least {MIN_BATCH} images of the part at once",
        )


def comparison_features(levels: Sequence[torch.Tensor], radii: Sequence[int]) -> list[torch.Tensor]:
    """Per radius, (N, C, h, w) features on the coarsest stage's grid (see the module notes)."""
    grid = (int(levels[-1].shape[-2]), int(levels[-1].shape[-1]))
    return [fuse_levels(levels, r, grid) for r in radii]


def reference_sets(n_images: int, max_references: int, seed: int) -> list[np.ndarray]:
    """For each image, the other images it is compared with: all of them up to
    ``max_references``, else a seeded random choice."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_images):
        others = np.delete(np.arange(n_images), i)
        out.append(others if len(others) <= max_references else np.sort(rng.choice(others, max_references, replace=False)))
    return out


def nearest_distances(features: torch.Tensor, on_image: torch.Tensor, references: Sequence[np.ndarray]) -> torch.Tensor:
    """(N, P, R) distance of every cell of every image to its nearest on-image cell of each of
    its R references. ``features`` (N, P, C); ``on_image`` (N, P) bool.

    Each image pair's distance matrix is computed once and read both ways when both images
    reference each other (always, in batches up to ``max_references`` + 1)."""
    wanted = {(i, int(j)) for i, refs in enumerate(references) for j in refs}
    found: dict[tuple[int, int], torch.Tensor] = {}
    for i, j in sorted(wanted):
        if (i, j) in found:
            continue
        d = torch.cdist(features[i], features[j])  # (P, P)
        found[(i, j)] = d.masked_fill(~on_image[j][None, :], math.inf).min(dim=1).values
        if (j, i) in wanted:
            found[(j, i)] = d.masked_fill(~on_image[i][:, None], math.inf).min(dim=0).values
    return torch.stack([torch.stack([found[(i, int(j))] for j in refs], dim=1) for i, refs in enumerate(references)])


def closest_mean(distances: torch.Tensor, fraction: float, left_out: torch.Tensor | None = None) -> torch.Tensor:
    """(N, P) mean of each cell's ``fraction`` smallest reference distances (at least one); ``left_out`` (N, R) marks
    references an image is not compared with (its near-identical pictures: :func:`twin_references`), the fraction then
    taken of the others."""
    if left_out is None or not bool(left_out.any()):
        k = max(1, math.ceil(fraction * distances.shape[-1]))
        return torch.topk(distances, k, dim=-1, largest=False).values.mean(dim=-1)
    out = torch.empty(distances.shape[:2], dtype=distances.dtype)
    for i in range(distances.shape[0]):
        kept = distances[i][:, ~left_out[i]] if bool((~left_out[i]).any()) else distances[i]  # nothing else: as it was
        k = max(1, math.ceil(fraction * kept.shape[-1]))
        out[i] = torch.topk(kept, k, dim=-1, largest=False).values.mean(dim=-1)
    return out


def twin_references(distances: torch.Tensor, on_image: torch.Tensor) -> torch.Tensor:
    """(N, R) True where a reference is a near-identical picture of the image (see :data:`TWIN_RATIO`): the 95th
    percentile of the image's on-image cells' distances to it, against that image's 75th percentile over its references."""
    rows = [torch.quantile(distances[i][on_image[i]], 0.95, dim=0) for i in range(distances.shape[0])]
    q = torch.stack(rows)
    return q < TWIN_RATIO * torch.quantile(q, 0.75, dim=1, keepdim=True)


def rescore(scores: np.ndarray, image_features: torch.Tensor, windows: Sequence[int]) -> np.ndarray:
    """MuSc's image-level re-scoring (RsCIN): for each window k, each image's score becomes the
    similarity-weighted mean of its own and its k - 1 most alike images' scores (cosine
    similarity of ``image_features`` (N, C), negatives as 0); the windows are averaged."""
    s = torch.as_tensor(scores, dtype=torch.float64)
    f = torch.nn.functional.normalize(image_features.double(), dim=1)
    similarity = (f @ f.T).clamp_min(0.0)
    similarity.fill_diagonal_(1.0)  # an image is its own closest neighbour, whatever rounding says
    out = torch.zeros_like(s)
    for k in windows:
        k = min(k, len(s))
        top = torch.topk(similarity, k, dim=1).indices
        weights = torch.zeros_like(similarity).scatter(1, top, similarity.gather(1, top))
        out += (weights @ s) / weights.sum(dim=1).clamp_min(1e-12)
    return (out / len(windows)).numpy()


def _top_mean(values: torch.Tensor, keep: torch.Tensor, fraction: float) -> float:
    return image_score(values[keep].numpy(), fraction)


def read_batch(encoded: EncodedBatch, config: BatchScoringConfig) -> BatchReading:
    """Mutual scoring, maps and re-scoring of one encoded batch (all images on one canvas)."""
    require_batch(len(encoded.placements))
    per_radius = comparison_features(encoded.levels, config.radii)
    n, _, h, w = per_radius[0].shape
    on_image = torch.stack(
        [torch.from_numpy(footprint_grid(p, encoded.canvas, (h, w)) > 0.5).reshape(-1) for p in encoded.placements]
    )
    on_image[on_image.sum(dim=1) == 0] = True  # a sliver of an image: every cell counts
    references = reference_sets(n, config.max_references, config.seed)
    closest = torch.zeros(n, h * w)
    spread = torch.zeros(n, h * w)
    twins: torch.Tensor | None = None
    for feats in per_radius:
        d = nearest_distances(feats.flatten(2).transpose(1, 2).contiguous(), on_image, references)
        if twins is None:
            twins = twin_references(d, on_image)  # read at the first radius, kept for the others
        near = closest_mean(d, config.closest_fraction, twins)
        # One unit for every radius and batch: the batch's median on-image patch.
        closest += near / near[on_image].median().clamp_min(1e-6)
        # Far references against close ones: near 1 for a patch every image shares, large for
        # one only a sub-population of the batch shares (closest_mean of the negated distances
        # is minus the mean of the farthest share).
        spread += -closest_mean(-d, SHARED_PATTERN_SHARE) / closest_mean(d, SHARED_PATTERN_SHARE, twins).clamp_min(1e-6)
    closest /= len(per_radius)
    spread /= len(per_radius)
    # Against the image's own typical cell: how far/close ratios run differs between parts
    # (a textured cookie's are higher than a plain commutator's); a shared pattern stands out
    # from the rest of its image whatever the part.
    shared = [
        _top_mean(spread[i], on_image[i], SHARED_PATTERN_TOP) / float(spread[i][on_image[i]].median().clamp_min(1e-6)) - 1.0
        for i in range(n)
    ]
    grids = closest.reshape(n, h, w)
    maps = [r.anomaly_map for r in grid_to_results(grids, encoded, config.blur_sigma, config.score_top_fraction)]
    if config.position_normalise:
        # Where a part's maps run high on every image (its edges, a feature only some images
        # show in full), a defect must stand out from the batch's maps *there*. Median and MAD:
        # half a batch may be defective somewhere.
        positions = PositionNormaliser.from_maps(maps, prior_images=config.position_prior_images, robust=True)
        for i, m in enumerate(maps):
            maps[i] = positions.apply(m)  # in place: one map at a time, not the batch twice
    raw = np.array([image_score(m, config.score_top_fraction) for m in maps])
    image_features = torch.stack([per_radius[0][i].flatten(1)[:, on_image[i]].mean(dim=1) for i in range(n)])
    return BatchReading(
        grids=grids,
        raw_scores=raw,
        scores=rescore(raw, image_features, config.rescore_windows),
        maps=maps,
        shared_pattern=float(np.median(shared)),
        with_twin=tuple(i for i in range(n) if twins is not None and bool(twins[i].any())),
        twin_pairs=tuple((i, int(references[i][r])) for i in range(n) for r in range(len(references[i]))
                         if twins is not None and bool(twins[i, r])),
        # Of batches it may be said of only (lot_notes): a small one's k-means and scikit-learn's import are spared.
        looks=two_looks(image_features) if n >= SMALL_BATCH else None,
    )


def results_in_units(reading: BatchReading, units: str) -> list[AnomalyResult]:
    """The detector's output of one reading: robust z-scores of the batch ('batch-outlier') or
    typical-patch units; every result carries the batch's warning, if any."""
    warning = reading.warning
    if units == "batch-outlier":
        maps = batch_relative_maps(reading.maps)
        scores = batch_relative_scores(reading.scores)
    else:
        maps, scores = reading.maps, [float(s) for s in reading.scores]
    return [AnomalyResult(float(s), m, batch_warning=warning) for s, m in zip(scores, maps, strict=True)]


class BatchScoringDetector:
    """Training-free detector: the images of a batch score each other (see the module notes)."""

    name = "batch-scoring"

    def __init__(self, config: BatchScoringConfig | None = None, encoder: PatchEncoder | None = None):
        self.config = config or BatchScoringConfig()
        self.encoder = encoder or PatchEncoder(self.config.encoder)
        self.thresholds: Thresholds | None = self.label_free_thresholds()
        self.normal_stats = None
        """No normal image was seen; a fused model holds the statistics of this detector's output."""
        self.last_reading: BatchReading | None = None
        """The reading of the batch scored last (its shared-pattern ratio, raw scores)."""

    def label_free_thresholds(self) -> Thresholds | None:
        """The thresholds this detector holds unless calibrated: a fixed outlier level of the batch in 'batch-outlier' units
        (what `calibrate --restore 0` returns to), None in 'typical-patch' units (a fused model sets them)."""
        return Thresholds(OUTLIER_THRESHOLD, OUTLIER_THRESHOLD, source="batch-outlier") if self.config.units == "batch-outlier" else None

    @property
    def batch_relative(self) -> bool:
        """True with 'batch-outlier' units: such scores cannot be put on a fixed scale by
        normal statistics. 'typical-patch' units can (that is what they are for)."""
        return self.config.units == "batch-outlier"

    @property
    def min_batch(self) -> int:
        """Fewest images :meth:`score` accepts at once."""
        return MIN_BATCH

    @property
    def inspect_batch(self) -> int:
        """Images ``defectlens inspect`` reads together (the configured ``inspect_batch``)."""
        return self.config.inspect_batch

    def encode(self, images: Sequence[np.ndarray]) -> EncodedBatch:
        """All ``images`` on one canvas (the batch's median aspect ratio, about ``side``² pixels)."""
        spec = CanvasSpec.for_sizes([(img.shape[1], img.shape[0]) for img in images], self.config.side)
        chunks = [self.encoder.encode(images[s : s + self.config.batch_size], spec) for s in range(0, len(images), self.config.batch_size)]
        return EncodedBatch(
            torch.cat([c.features for c in chunks]),
            [p for c in chunks for p in c.placements],
            spec,
            [torch.cat([c.levels[i] for c in chunks]) for i in range(len(chunks[0].levels))],
        )

    def score(self, images: Sequence[np.ndarray], progress: Progress | None = None) -> list[AnomalyResult]:
        """Score the images of one batch of the same part against each other (at least
        :data:`~defectlens.detect.maps.MIN_BATCH`; checked before anything is encoded)."""
        require_batch(len(images))
        # Each picture once: a camera's re-trigger (a file copied twice) counted as another part sharing its defect, and
        # two copies of a crack scored it GOOD, a copy's verdict differing from its twin's (zero-shot probe 2026-12-06).
        first: dict[str, int] = {}
        # Files on disk by the digests their check took (decoded once more, each, otherwise).
        digests = images.digests if isinstance(images, ImageFiles) and images.digests else [image_digest(image) for image in images]
        of = [first.setdefault(digest, i) for i, digest in enumerate(digests)]
        distinct = sorted(first.values())
        if len(distinct) < len(images):
            copies = len(images) - len(distinct)
            require_batch(len(distinct), f"batch scoring (of {len(images)} images, {copies} {'copy' if copies == 1 else 'copies'} of others, "
                                         "each picture counted once)")
            images = images.subset(distinct) if isinstance(images, ImageFiles) else [images[i] for i in distinct]
        # Files on disk by what their scan noted (not decoded again for it; none noted, nothing said).
        flags = images.grey if isinstance(images, ImageFiles) else [is_grey(image) for image in images]
        # Pictures a few levels off grey (a grey part under a drifting white balance, a dim colour one) are neither: each, not the
        # batch (one such frame had silenced the note for every other picture; regression probe 2026-12-07).
        mixed = 0 < sum(flags) < len(flags)
        grey = [True if g else (False if channel_difference(images[k]) >= CLEAR_COLOUR else None) for k, g in enumerate(flags)] \
            if mixed else list(flags)
        encoded = self.encode(images)
        sizes = [(p.original_width, p.original_height) for p in encoded.placements]
        reading = read_batch(encoded, self.config)
        # Near-identical pictures read as one, as copies are: left out of each other's references alone, three noisy copies of
        # one pitted screw still counted thrice in the batch's spread and re-scoring, and took two other pitted ones to GOOD
        # (regression probe 2026-12-06). Of one size only: a picture's map is given to its near-copies.
        group = near_copy_groups(reading.twin_pairs, sizes)
        pictures = sorted(set(group))
        if len(pictures) < len(group):
            require_batch(len(pictures), f"batch scoring (of {len(of)} images, {len(group) - len(pictures)} near-identical to others, "
                                         "each picture counted once)")
            reading = read_batch(_subset_encoded(encoded, pictures), self.config)
        # Kept without its maps (what is read of it later is the batch's scores and warning): a
        # batch's maps of large parts are hundreds of MB, held until the next batch otherwise.
        self.last_reading = replace(reading, maps=[])
        if progress:
            progress(len(of))
        read = results_in_units(reading, self.config.units)
        slot = {picture: k for k, picture in enumerate(pictures)}
        results = [read[slot[group[k]]] for k in range(len(group))]  # each distinct image: its picture's result
        said = lot_notes([sizes[k] for k in pictures], len(of), len(distinct), [grey[k] for k in pictures] if grey else [], reading.looks)
        members = Counter(group)
        grouped = {k for k in range(len(group)) if members[group[k]] > 1}
        if not said and len(distinct) == len(of) and not grouped and not reading.with_twin:
            return results
        at = {i: k for k, i in enumerate(distinct)}
        near = ("near-identical pictures of this part are in its batch (a camera re-trigger?): read as one picture, each takes "
                "its result — a copy would otherwise hide a defect they share")
        twin = "a near-identical picture of this part is in its batch: it was judged without it"

        def notes_of(k: int) -> str | None:
            extra = near if k in grouped else twin if slot[group[k]] in reading.with_twin else None
            return "; ".join(filter(None, (results[k].batch_warning, *said, extra))) or None

        return [replace(results[at[first_i]], batch_warning=notes_of(at[first_i])) for first_i in of]

    def describe(self) -> dict:
        """What the model card says about this detector (plain JSON)."""
        c = self.config
        return {
            "encoder": c.encoder.to_json(),
            "radii": list(c.radii),
            "closest_fraction": c.closest_fraction,
            "max_references": c.max_references,
            "rescore_windows": list(c.rescore_windows),
            "score_top_fraction": c.score_top_fraction,
            "position_normalise": c.position_normalise,
            "position_prior_images": c.position_prior_images,
            "units": c.units,
            "min_batch": MIN_BATCH,
            "inspect_batch": c.inspect_batch,
        }

    def save(self, directory: str | Path) -> None:
        """Write ``batch_scoring.json``: the settings, and the thresholds when ``defectlens
        calibrate`` moved them from the outlier rule (the rest of the model is the batch read)."""
        content = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": self.config.to_json()}
        if self.thresholds is not None and self.thresholds.source != "batch-outlier":
            content["thresholds"] = self.thresholds.to_json()
        write_json_atomic(Path(directory) / CONFIG_FILE, content)

    @classmethod
    def needs_taxonomy(cls, directory: str | Path) -> bool:
        """Never: the batch itself is the reference."""
        return False

    @classmethod
    def load(cls, directory: str | Path, *, context: LoadContext | None = None) -> BatchScoringDetector:
        """Load a folder :meth:`save` wrote (``context`` is not needed)."""
        root = Path(directory)
        meta = read_model_json(root, CONFIG_FILE, FORMAT, FORMAT_VERSION, "batch-scoring model", "`defectlens fit --detector batch-scoring`")
        try:
            config = BatchScoringConfig.from_json(meta["config"])
            thresholds = Thresholds(**meta["thresholds"]) if meta.get("thresholds") is not None else None
        except (KeyError, TypeError, ValueError) as exc:
            remedy = "re-create it with `defectlens fit --detector batch-scoring`"
            raise ModelFileError(f"invalid batch-scoring settings ({exc})", root / CONFIG_FILE, remedy) from None
        detector = cls(config)
        if thresholds is not None:
            detector.thresholds = thresholds
        return detector
