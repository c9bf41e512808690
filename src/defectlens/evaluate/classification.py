"""Defect-type classification quality: one record, scored on true or on detected regions.

Two ways to choose the region a classifier is asked about, one result type
(:class:`TypeEvaluation`, computed by :func:`type_evaluation` from the metrics in
:mod:`defectlens.evaluate.metrics`):

* :func:`evaluate_types` classifies each image's ground-truth mask. That isolates the
  classifier from detection and localisation: a wrong type is its fault alone.
  :func:`embed_items` and :func:`evaluate_embedded` are its two halves, so that several example
  draws can reuse one encoding of the images (the benchmark does).
* :func:`evaluate_detected_types` takes the type `inspect` gives each flagged image's most anomalous
  region (detection and classification together, as VELM scores it).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from sklearn.metrics import f1_score

from defectlens.classify.fewshot import FewShotClassifier
from defectlens.evaluate.harness import ScoredSet
from defectlens.evaluate.metrics import confusion, type_accuracy, type_macro_f1
from defectlens.io import GOOD, LabelledImage, load_image, load_mask, printable_text
from defectlens.taxonomy import UNKNOWN, same_type_name
from defectlens.types import Inspection, RegionType

Progress = Callable[[int], None]


def _json_float(value: float) -> float | None:
    # JSON has no NaN: an undefined metric (no image scored) is written as null.
    return None if math.isnan(value) else round(value, 4)


@dataclass
class TypeEvaluation:
    """Type accuracy, macro-F1 and confusion of a classifier over images (one region per image).

    Every metric is ``nan`` when no image was scored (``None`` in :meth:`to_json`).
    """

    n_images: int
    accuracy: float
    """Share of images given their true type; 'unknown' is wrong for every type."""
    macro_f1: float
    """Mean F1 over the true and predicted known types (see :func:`~defectlens.evaluate.metrics.type_macro_f1`)."""
    unknown_rate: float
    """Share of images the classifier called 'unknown'."""
    per_type_f1: dict[str, float]
    """F1 of each known type; nan (null in JSON) for a type no image was of nor said to be."""
    labels: list[str]
    """Row and column order of ``confusion``: the known types (sorted), then 'unknown'."""
    confusion: list[list[int]]
    """``confusion[i][j]``: images of true type ``labels[i]`` predicted ``labels[j]``."""
    seconds_per_region: float | None = None
    """Classifier time per region, when measured."""
    skipped: list[str] = field(default_factory=list)
    """Images that could not be scored, one line each."""
    category: str | None = None
    k: int | None = None
    """Examples per type the classifier was fitted on, when known."""
    n_not_flagged: int = 0
    """Defective images left out because the detector passed them (on detected regions: they get no type)."""

    def to_json(self) -> dict:
        """Plain-JSON form: the fields by name, fractions rounded to 4 places, ``nan`` as ``None``."""
        return {
            "category": self.category,
            "k": self.k,
            "n_images": self.n_images,
            "n_not_flagged": self.n_not_flagged,
            "accuracy": _json_float(self.accuracy),
            "macro_f1": _json_float(self.macro_f1),
            "unknown_rate": _json_float(self.unknown_rate),
            "per_type_f1": {t: _json_float(v) for t, v in self.per_type_f1.items()},
            "labels": self.labels,
            "confusion": self.confusion,
            "seconds_per_region": None if self.seconds_per_region is None else round(self.seconds_per_region, 4),
            "skipped": self.skipped,
        }


def type_evaluation(
    true: Sequence[str],
    pred: Sequence[str],
    class_names: Sequence[str] = (),
    *,
    seconds_per_region: float | None = None,
    skipped: Sequence[str] = (),
    category: str | None = None,
    k: int | None = None,
) -> TypeEvaluation:
    """Score predicted against true defect types.

    ``class_names`` (the classifier's types) join the true and predicted types as rows of the
    confusion matrix and of ``per_type_f1``, so a type the classifier knows but never got right
    shows up there too (its F1 nan when no image was of it or said to be: ``macro_f1`` is the mean of
    the others).
    """
    known = sorted((set(class_names) | set(true) | set(pred)) - {UNKNOWN})
    per_type: dict[str, float] = {}
    if true:
        # zero_division=0: a type never predicted (or never true) has F1 0 instead of a warning.
        scores = f1_score(list(true), list(pred), labels=known, average=None, zero_division=0)
        # A type neither true nor predicted on any image has no F1 (nan, null in JSON): as 0 it had not been among those
        # macro_f1 averages, and the mean of the listed values was not macro_f1 (metrics probe 2026-12-06).
        seen = set(true) | set(pred)
        per_type = {t: float(v) if t in seen else math.nan for t, v in zip(known, scores, strict=True)}
    labels = [*known, UNKNOWN]
    return TypeEvaluation(
        n_images=len(true),
        accuracy=type_accuracy(true, pred),
        macro_f1=type_macro_f1(true, pred),
        unknown_rate=float(np.mean([p == UNKNOWN for p in pred])) if pred else math.nan,
        per_type_f1=per_type,
        labels=labels,
        confusion=confusion(true, pred, labels).tolist(),
        seconds_per_region=seconds_per_region,
        skipped=list(skipped),
        category=category,
        k=k,
    )


# --------------------------------------------------------------------------------------------
# On ground-truth regions
# --------------------------------------------------------------------------------------------


@dataclass
class EmbeddedItems:
    """Region vectors of labelled items (one per item: its whole true mask), ready to score."""

    items: list[LabelledImage]
    vectors: np.ndarray
    seconds_per_region: float
    skipped: list[str] = field(default_factory=list)


def embed_items(classifier: FewShotClassifier, items: Sequence[LabelledImage], progress: Progress | None = None) -> EmbeddedItems:
    """Encode each defective item's true mask once (so several example draws can reuse them).

    Items without a mask, or whose image or mask cannot be read, are skipped and listed.
    """
    kept: list[LabelledImage] = []
    vectors: list[np.ndarray] = []
    skipped: list[str] = []
    elapsed = 0.0
    for item in items:
        if not item.is_defective:
            continue
        if item.mask_path is None:
            skipped.append(f"{item.path}: no ground-truth mask")
            continue
        try:
            image = load_image(item.path)
            mask = load_mask(item.mask_path, expected_size=(image.shape[1], image.shape[0]))
        except Exception as exc:  # noqa: BLE001 - one bad file must not end the evaluation
            skipped.append(f"{item.path}: {exc}")
            continue
        if not mask.any():
            skipped.append(f"{item.path}: empty ground-truth mask")
            continue
        start = time.perf_counter()
        vectors.append(classifier.embed(image, [mask])[0])
        elapsed += time.perf_counter() - start
        kept.append(item)
        if progress:
            progress(1)
    dim = vectors[0].shape[0] if vectors else 0
    stacked = np.stack(vectors) if vectors else np.zeros((0, dim), np.float32)
    return EmbeddedItems(kept, stacked, elapsed / max(1, len(kept)), skipped)


def examples_per_type(classifier: FewShotClassifier) -> int | None:
    """How many examples the classifier was fitted on for each type (its ``k``), when every type
    had the same number; None when they differ or nothing is fitted."""
    counts = {len(set(classifier.groups[classifier.labels == i].tolist())) for i in range(len(classifier.class_names))}
    return counts.pop() if len(counts) == 1 else None


def category_of(items: Sequence[LabelledImage]) -> str | None:
    """The category the items were drawn from: the folder above ``test/<type>/`` they share, if they do."""
    roots = {it.path.parent.parent for it in items if it.path.parent.parent.name == "test"}
    return roots.pop().parent.name if len(roots) == 1 else None


def evaluate_embedded(classifier: FewShotClassifier, embedded: EmbeddedItems, exclude: set | None = None) -> TypeEvaluation:
    """Score a fitted classifier on pre-embedded items, leaving out those whose path is in ``exclude``."""
    keep = [i for i, it in enumerate(embedded.items) if not exclude or it.path not in exclude]
    truth = [embedded.items[i].defect_type for i in keep]
    pred = [rt.defect_type for rt in classifier.classify_vectors(embedded.vectors[keep])] if keep else []
    return type_evaluation(
        truth, pred, classifier.class_names, seconds_per_region=embedded.seconds_per_region, skipped=embedded.skipped,
        category=category_of(embedded.items), k=examples_per_type(classifier),
    )


def evaluate_types(classifier: FewShotClassifier, items: Sequence[LabelledImage], progress: Progress | None = None) -> TypeEvaluation:
    """Classify each defective item's true mask and compare with its folder's type.

    Items without a mask, or whose image or mask cannot be read, are skipped and listed.
    """
    return evaluate_embedded(classifier, embed_items(classifier, items, progress))


# --------------------------------------------------------------------------------------------
# On detected regions
# --------------------------------------------------------------------------------------------


TypeImage = Callable[[np.ndarray, Inspection], Sequence[RegionType] | None]
"""Types an inspected image's regions as `inspect` does (e.g. :func:`defectlens.engine.type_with_notes`'s types); None where
the image could not be typed (the machine out of memory): it is left out of the figures."""


def evaluate_detected_types(
    scored: ScoredSet, type_image: TypeImage, class_names: Sequence[str], excluded: set[str], category: str, k: int | None,
    spellings: Sequence[str] = (),
) -> TypeEvaluation:
    """Type accuracy / macro-F1 of the types `inspect` gives, on the defective images of ``scored`` it flags. A type however a
    test folder spells it is named as ``class_names``, then ``spellings`` (the part's taxonomy), spell it.

    Each flagged image's predicted type is the type ``type_image`` gives its most anomalous region
    ('unknown' when it gives none, as for an image unlike every normal one). Defective images the
    detector passed get no type from `inspect`: they are counted in :attr:`TypeEvaluation.n_not_flagged`,
    not typed here — a metrics audit found the figure typing them, and every image on one raw mask
    that `inspect` never reads (11 of 20 types differed from `inspect`'s). ``excluded`` are the
    example images' paths; ``k`` the examples drawn from each type's test images (None: examples given apart). ``scored``
    must have been built with ``keep_images=True``.
    """
    true, pred = [], []
    not_flagged = 0

    def spelt(name: str) -> str:
        # One type however a folder spells it: a test folder "Crack" against the classifier's "crack" had scored every
        # right type wrong, accuracy 0.000 unsaid (types probe 2026-12-07).
        return next((known for known in (*class_names, *spellings) if same_type_name(known, name)), name)

    for source, defect, inspection, image in zip(scored.sources, scored.defect_types, scored.inspections, scored.images, strict=True):
        if defect == GOOD or source in excluded:
            continue
        if not inspection.is_defective:
            not_flagged += 1
            continue
        if (typed := type_image(image, inspection)) is None:
            continue
        types = {t.region_index: t.defect_type for t in typed}
        true.append(spelt(defect))
        pred.append(spelt(types.get(inspection.regions[0].index, UNKNOWN)) if inspection.regions else UNKNOWN)
    return replace(type_evaluation(true, pred, class_names, category=category, k=k), n_not_flagged=not_flagged)


def confusion_figure_png(evaluation: TypeEvaluation) -> bytes:
    """The confusion matrix as a PNG (counts in each cell; one row per true type); :class:`~defectlens.evaluate.roc.PlotUnavailable`
    where Matplotlib cannot start."""
    from defectlens.evaluate.roc import pyplot

    plt = pyplot()

    # A true type is never 'unknown': its row (the last) is always empty, so it is not drawn.
    # Names not in UTF-8 (a type folder's) as backslash escapes (\xe9): Matplotlib's text refuses Python's stand-ins for their bytes.
    rows, cols = [printable_text(n) for n in evaluation.labels[:-1]], [printable_text(n) for n in evaluation.labels]
    matrix = np.asarray(evaluation.confusion, dtype=np.int64).reshape(len(cols), len(cols))[:-1]
    # Room for a title of two lines (the name, then the figures), whatever the matrix: a part of one type had its "k=5" cut
    # off, and a wrapped title squeezed the matrix (metrics and regression probes 2026-12-07).
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 + 0.8 * len(cols)), 1.6 + 0.7 * max(1, len(rows))))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", color="black")
    name = printable_text(evaluation.category or "types")
    name = name if len(name) <= 40 else f"{name[:39]}…"
    k = "" if evaluation.k is None else f", k={evaluation.k}"
    # No image typed (none flagged): "accuracy nan" had been the title of an all-zero matrix.
    accuracy = "n/a (no image typed)" if math.isnan(evaluation.accuracy) else f"{evaluation.accuracy:.2f}"
    ax.set_title(f"{name}\naccuracy {accuracy}{k}", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
