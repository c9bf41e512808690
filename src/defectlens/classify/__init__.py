"""classify: give each located region a defect type from the part's taxonomy.

- :func:`load_taxonomy` / :class:`Taxonomy`: the validated ``taxonomy.json`` (with optional
  severity, impact and action per type).
- :class:`FewShotClassifier`: nearest-example classifier over pooled region features, fitted
  from a few labelled examples per type (:func:`examples_from_category`,
  :func:`examples_from_folders`); says ``unknown`` for regions far from every example.
- :class:`VLMClassifier`: asks an OpenAI-compatible vision-language endpoint instead.
- :func:`region_masks`: the pixel mask of every region of an :class:`~defectlens.types.Inspection`.
- :func:`evaluate_types`: accuracy and macro-F1 of a classifier on ground-truth regions.
"""

from defectlens.classify.evaluate import TypeEvaluation, evaluate_types
from defectlens.classify.fewshot import (
    Classification,
    Example,
    ExampleSet,
    FewShotClassifier,
    FewShotConfig,
    examples_from_category,
    examples_from_folders,
    region_masks,
)
from defectlens.classify.vlm import VLMClassifier, VLMConfig, VLMError
from defectlens.taxonomy import UNKNOWN, DefectSpec, Severity, Taxonomy, load_taxonomy, parse_taxonomy

__all__ = [
    "UNKNOWN",
    "Classification",
    "DefectSpec",
    "Example",
    "ExampleSet",
    "FewShotClassifier",
    "FewShotConfig",
    "Severity",
    "Taxonomy",
    "TypeEvaluation",
    "VLMClassifier",
    "VLMConfig",
    "VLMError",
    "evaluate_types",
    "examples_from_category",
    "examples_from_folders",
    "load_taxonomy",
    "parse_taxonomy",
    "region_masks",
]
