"""classify: give each located region a defect type from the part's taxonomy.

- :func:`load_taxonomy` / :class:`Taxonomy`: the validated ``taxonomy.json`` (with optional
  severity, impact and action per type).
- :class:`FewShotClassifier`: nearest-example classifier over pooled region features, fitted
  from a few labelled examples per type; says ``unknown`` for regions far from every example.
- :func:`examples_from_category`, :func:`examples_from_folders`: labelled examples on disk;
  :func:`locate_examples`: a fitted detector locates the defect in examples without masks
  (:func:`locate_defect` in one map, as :class:`LocateOptions` say).
- :class:`VLMClassifier`: asks an OpenAI-compatible vision-language endpoint instead.
- :func:`region_masks`: the pixel mask of every region of an :class:`~defectlens.types.Inspection`.

Scoring a classifier (accuracy, macro-F1, confusion) is evaluation's job:
:mod:`defectlens.evaluate.classification`.
"""

from defectlens.classify.examples import (
    LOCATE_HINT,
    Example,
    ExampleSet,
    Located,
    LocateOptions,
    examples_from_category,
    examples_from_folders,
    locate_defect,
    locate_examples,
)
from defectlens.classify.fewshot import FewShotClassifier, FewShotConfig, FewShotFitSummary
from defectlens.classify.regions import Classification, region_masks, untyped_reason
from defectlens.classify.vlm import VLMClassifier, VLMConfig, VLMError
from defectlens.taxonomy import UNKNOWN, DefectSpec, Severity, Taxonomy, load_taxonomy, parse_taxonomy

__all__ = [
    "LOCATE_HINT",
    "UNKNOWN",
    "Classification",
    "DefectSpec",
    "Example",
    "ExampleSet",
    "FewShotClassifier",
    "FewShotConfig",
    "FewShotFitSummary",
    "LocateOptions",
    "Located",
    "Severity",
    "Taxonomy",
    "VLMClassifier",
    "VLMConfig",
    "VLMError",
    "examples_from_category",
    "examples_from_folders",
    "load_taxonomy",
    "locate_defect",
    "locate_examples",
    "parse_taxonomy",
    "region_masks",
    "untyped_reason",
]
