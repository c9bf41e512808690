"""Field docstrings where help() shows them (an API probe, 2026-12-05: in a notebook,
help(Inspection) never said that image_size is (width, height) while anomaly_map is (H, W))."""

from __future__ import annotations

import pydoc

from defectlens import InspectorSettings
from defectlens.detect import FitSummary
from defectlens.types import Inspection, Region


def test_help_shows_what_each_documented_field_means():
    text = pydoc.render_doc(Inspection, renderer=pydoc.plaintext)
    assert "image_size: (width, height) of the original image." in text
    assert "anomaly_map: float32 (H, W) at the original resolution" in text
    assert "(x0, y0, x1, y1), x1/y1 exclusive." in pydoc.render_doc(Region, renderer=pydoc.plaintext)
    assert "notes: What the fit warned of" in (FitSummary.__doc__ or "")
    # The class's own summary stays first, once.
    assert (Inspection.__doc__ or "").startswith("The full verdict for one image") and (Inspection.__doc__ or "").count("Fields:") == 1
    assert "Fields:" in (InspectorSettings.__doc__ or "")


def test_every_setting_a_user_passes_says_what_it_does():
    # API probe 2026-12-06: help(InspectorSettings) said nothing of backbone, coreset_ratio or standardize.
    import dataclasses

    doc = InspectorSettings.__doc__ or ""
    missing = [f.name for f in dataclasses.fields(InspectorSettings) if f"{f.name}:" not in doc]
    assert missing == []


def test_every_field_of_an_evaluation_says_what_it_is_and_its_json_key():
    # Own-dataset probe 2026-12-07: help(DetectionEvaluation) showed one line, and its fields' names (operating_point,
    # unlike_normal, drift) are not the JSON's keys (recall_at_threshold, unlike_normal_good, drift_of_good_images).
    import dataclasses

    from defectlens.evaluate.harness import DetectionEvaluation

    doc = DetectionEvaluation.__doc__ or ""
    assert [f.name for f in dataclasses.fields(DetectionEvaluation) if f"{f.name}:" not in doc] == []
    for key in ("recall_at_threshold", "unlike_normal_good", "drift_of_good_images", "reference_1pct_false_alarms"):
        assert key in doc
