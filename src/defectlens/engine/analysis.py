"""Optional stages after detection, as `inspect` and the service run them: defect-type
classification and reports.

Failures here never stop an inspection: what could not be computed is skipped and the
report says so.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from defectlens.classify.examples import LOCATING_MAP_SIGMA, ExampleSet, examples_from_category, examples_from_folders, locate_examples
from defectlens.classify.fewshot import FewShotClassifier
from defectlens.classify.regions import UNTYPED, type_regions
from defectlens.descriptor import CAMERA_REASONS, camera_reason_in
from defectlens.detect.memory_bank import MemoryBankDetector
from defectlens.errors import ConfigError, DefectlensError
from defectlens.explain.report import build_report, write_report_files
from defectlens.io.dataset import folder_any_case
from defectlens.taxonomy import Taxonomy, load_taxonomy, same_type_name
from defectlens.types import AnomalyResult, GroundingResult, Inspection, RegionType

if TYPE_CHECKING:
    from defectlens.inspector import Inspector


@dataclass(frozen=True)
class Locator:
    """What locating defects in mask-free examples needs of the fitted model (see
    :func:`~defectlens.classify.examples.locate_examples`)."""

    score: Callable[[Sequence[np.ndarray]], list[AnomalyResult]]
    pixel_threshold: float
    min_region_px: int | None = None
    normal_median: float | None = None
    """The normal images' median pixel: how high an example's peak must rise is measured from it."""
    image_threshold: float | None = None
    """Where to seek again when nothing is found at the pixel threshold (a higher one, calibrated)."""
    bit_depth: int | None = None
    """The sensor depth the model reads pixels deeper than 8 bits at (:attr:`Inspector.bit_depth`): examples too."""

    @classmethod
    def of(cls, inspector: Inspector) -> Locator:
        """The locator of a loaded model: its scores, pixel threshold, smallest region and normal
        median. A memory bank's maps are read smoothed less (:data:`LOCATING_MAP_SIGMA`): where the
        defect lies, not whether the part is defective, is what locating asks of them."""
        detector = inspector.detector
        stats = detector.normal_stats
        # Examples are decoded by load_image (the pixel gate) before they are scored.
        score = detector.with_map_sigma(LOCATING_MAP_SIGMA).score if isinstance(detector, MemoryBankDetector) else detector.score
        return cls(score, inspector.thresholds.pixel, inspector.settings.min_region_px, stats.pixel_median if stats else None,
                   inspector.thresholds.image, inspector.bit_depth)


EXAMPLES_PER_TYPE = 5
"""Examples drawn per type from an MVTec category given as examples (``--k``), unless said otherwise."""


def examples_to_draw(k: int | None, examples: Path | None) -> int:
    """``--k`` as a command uses it: :data:`EXAMPLES_PER_TYPE` when not given, and refused when given where it draws nothing
    (no examples, or a folder per type, every example of which is used): said, not ignored (CLI probe 2026-12-06)."""
    if k is None:
        return EXAMPLES_PER_TYPE
    if examples is None or not folder_any_case(examples, "test").is_dir():
        raise ConfigError(f"--k {k} draws examples from an MVTec category given as --examples, and " +
                          ("none is given" if examples is None else f"{examples} is a folder of examples, each of which is used"),
                          examples, "drop --k, or pass an MVTec category (CATEGORY/test/<type>/) with --examples")
    return k


def gather_examples(examples: Path, k: int, seed: int = 0, locator: Locator | None = None) -> ExampleSet:
    """The defect examples in ``examples`` — an MVTec category (``k`` per type from ``test/<type>``,
    drawn with ``seed``) or a folder per type — with the defect located by ``locator`` in each
    one without a mask (:func:`~defectlens.classify.examples.locate_examples`); without a
    locator, such an example's whole image is its region."""
    locate = locator is not None
    if folder_any_case(examples, "test").is_dir():  # a category's test/ in any case, as load_category reads it
        example_set, _ = examples_from_category(examples, k, seed=seed, will_locate=locate)
    else:
        example_set = examples_from_folders(examples, will_locate=locate)
    if locator is None:
        return example_set
    return locate_examples(example_set, locator.score, locator.pixel_threshold, locator.min_region_px, normal_median=locator.normal_median,
                           image_threshold=locator.image_threshold, bit_depth=locator.bit_depth)


@dataclass
class Analysis:
    """What the optional stages have to work with, and what was skipped while setting them up."""

    taxonomy: Taxonomy | None = None
    classifier: FewShotClassifier | None = None
    writer: str = "template"
    notes: list[str] = field(default_factory=list)
    excluded: set[str] = field(default_factory=set)
    """Example images (they must not be scored as test images)."""
    taxonomy_unread: bool = False
    """A taxonomy file was given (or kept in the model folder) but could not be read: said in :attr:`notes`, its regions
    untyped for that reason (not for want of a taxonomy, which had been said beside it: types probe 2026-12-07)."""

    def stamp(self) -> str:
        """A short digest of what types and words the reports: the taxonomy, the classifier's types and number of
        example vectors, the writer. Kept in each inspection JSON, so that `inspect --resume` can say which results
        were typed another way (with other examples, say), where it had taken them as done without a word. Not the
        vectors' bytes: a Ray worker's encoder may round their last digits otherwise than the command's."""
        return hashlib.sha256(json.dumps({
            "taxonomy": self.taxonomy.to_json() if self.taxonomy is not None else None,
            # As the outputs spell them (the taxonomy's spelling): results typed "CRACK" before types were so spelt are said by
            # --resume to have been typed otherwise, to be redone (regression probe 2026-12-07: said as done).
            "types": [self.taxonomy.reported(n) if self.taxonomy is not None and self.taxonomy.get(n) else n
                      for n in self.classifier.class_names] if self.classifier is not None else None,
            "examples": len(self.classifier.vectors) if self.classifier is not None else 0,
            "writer": self.writer,
        }, sort_keys=True).encode()).hexdigest()[:16]


def prepare_analysis(
    taxonomy_path: Path | None, examples: Path | None, k: int, writer: str, seed: int = 0, locator: Locator | None = None,
    examples_required: bool = False,
) -> Analysis:
    """Load the taxonomy and fit (or load) the few-shot classifier; problems become notes, or,
    with ``examples_required`` (the user named the examples), an examples folder that gives no
    classifier raises its :class:`DefectlensError`.

    With a ``locator`` (the fitted model), examples without masks are located first: their
    strongest region is the example; without one, the whole image is."""
    analysis = Analysis(writer=writer)
    if taxonomy_path is not None:
        try:
            analysis.taxonomy = load_taxonomy(taxonomy_path)
        except DefectlensError as exc:
            analysis.taxonomy_unread = True
            analysis.notes.append(f"taxonomy skipped (until it is fixed, regions are typed by --examples only and reports give default "
                                  f"actions): {exc}")
    if examples is not None:
        try:
            if (examples / "fewshot.json").is_file():
                analysis.classifier = FewShotClassifier.load(examples)
            else:
                example_set = gather_examples(examples, k, seed, locator)
                analysis.notes.extend(example_set.notes)
                analysis.excluded = {str(e.path) for e in example_set.examples}
                analysis.classifier = FewShotClassifier()
                # Read as the model reads the images it inspects (16-bit examples at its depth).
                analysis.notes.extend(analysis.classifier.fit(example_set.examples, bit_depth=locator.bit_depth if locator else None).notes)
        except DefectlensError as exc:
            if examples_required:
                raise
            analysis.notes.append(f"defect-type classification skipped: {exc}")
    if analysis.classifier is not None and analysis.taxonomy is not None:
        # Examples of another part: every region they type is reported as unknown, said once here.
        foreign = [t for t in analysis.classifier.class_names if analysis.taxonomy.get(t) is None]
        if foreign:
            # A folder spelt with "_" for the taxonomy's space is named with its fix (types probe 2026-12-07: "hair_line" was
            # asked whether it held examples of another part, "hair line" left with none, unsaid).
            near = [f"{t!r} may be the taxonomy's {n!r}" for t in foreign for n in analysis.taxonomy.names if _loosely(t) == _loosely(n)]
            analysis.notes.append(
                f"example type(s) {', '.join(foreign)} are not in the {analysis.taxonomy.object_name} taxonomy "
                f"({', '.join(analysis.taxonomy.names)}): " + (f"{'; '.join(near)} — rename the folder to it. " if near else
                                                               "examples of another part? ") + "Regions typed so are reported as unknown"
            )
        if without := [n for n in analysis.taxonomy.names if not any(same_type_name(n, t) for t in analysis.classifier.class_names)]:
            analysis.notes.append(f"the taxonomy's type(s) {', '.join(without)} have no examples: a region of them is typed as the "
                                  "nearest type that has, or unknown")
    return analysis


def _loosely(name: str) -> str:
    """A type's name with case, and spaces, "_" and "-" between its words, aside: how a folder may spell a taxonomy's type."""
    return re.sub(r"[\s_-]+", " ", name).strip().casefold()


def type_with_notes(
    analysis: Analysis, image: np.ndarray, inspection: Inspection, grounding: GroundingResult | None = None,
) -> tuple[list[RegionType], list[str]]:
    """The inspection's region types and the notes its report carries (the analysis's own, then
    the classifier's), as `inspect` and the service both get them. A classifier that fails types
    nothing and says why in a note: the verdict and regions stand without types."""
    notes = list(analysis.notes)
    if inspection.unlike_normal:
        # The whole image is unlike every normal one (another part, a faulty frame): a type
        # named for its regions ("pitting, 100 % of the part" on a cookie) would mislead.
        # A grey image for a model of colour parts in its own words (drift probe: read as the frame check's).
        camera = camera_reason_in(inspection.unlike_normal)
        why = CAMERA_REASONS[camera][0] if camera is not None else "the whole image is unlike every normal one"
        return [], [*notes, f"regions not typed: {why}"]
    try:
        result = type_regions(image, inspection, analysis.classifier, analysis.taxonomy, grounding)
    except DefectlensError as exc:
        return [], [*notes, f"defect-type classification failed: {exc}"]
    # An unread taxonomy is why, said in the notes already: "add a taxonomy.json" beside it had contradicted it.
    return result.region_types, notes + [n for n in result.notes if not (analysis.taxonomy_unread and n == UNTYPED)]


def analyse(
    analysis: Analysis,
    image: np.ndarray,
    inspection: Inspection,
    out_dir: Path,
    stem: str,
    grounding: GroundingResult | None = None,
    verdict_notes: Sequence[str] = (),
    record: dict | None = None,
) -> list[RegionType]:
    """Type the inspection's regions and write the report files (``record``: what made the verdict, :attr:`Report.record`).

    Types come from :func:`~defectlens.classify.regions.type_regions`: labelled examples when
    given, else the taxonomy's descriptions, else a grounding model's maps. ``verdict_notes``, about the
    verdict itself (a batch's warning, :attr:`Inspector.verdict_basis`), are the report's first notes.
    """
    region_types, notes = type_with_notes(analysis, image, inspection, grounding)
    notes = [*verdict_notes, *notes]
    report = build_report(inspection, region_types, analysis.taxonomy, analysis.writer, notes)
    report.record = record
    write_report_files(report, out_dir, stem)
    return region_types
