"""engine: where `inspect` runs its batches. :mod:`defectlens.engine.local` inspects and writes
one batch (this process, and each Ray worker) with the optional stages of
:mod:`defectlens.engine.analysis` (types, reports; the service uses them too);
:mod:`defectlens.engine.ray_engine` spreads the batches over a pool of Ray workers (imported only
when asked for: Ray is an optional extra, so it is not re-exported here)."""

from defectlens.engine.analysis import Analysis, Locator, examples_to_draw, gather_examples, prepare_analysis, type_with_notes
from defectlens.engine.local import (
    INSPECTION_SUFFIXES,
    MASK_SUFFIX,
    OVERLAY_FORMATS,
    BatchOutcome,
    audit_record,
    changed_since_inspected,
    completed_inspection,
    has_all_files,
    inspect_and_write,
    inspection_overlay,
    load_for_inspection,
    region_mask_png,
    same_model,
    same_source,
    verdict_record,
)

__all__ = [
    "INSPECTION_SUFFIXES",
    "MASK_SUFFIX",
    "OVERLAY_FORMATS",
    "Analysis",
    "BatchOutcome",
    "Locator",
    "audit_record",
    "changed_since_inspected",
    "completed_inspection",
    "examples_to_draw",
    "gather_examples",
    "has_all_files",
    "inspect_and_write",
    "inspection_overlay",
    "load_for_inspection",
    "prepare_analysis",
    "region_mask_png",
    "same_model",
    "same_source",
    "type_with_notes",
    "verdict_record",
]
