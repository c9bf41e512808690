"""Few-shot classification on the real steel-strip scans (skipped when shared data is absent)."""

from __future__ import annotations

import pytest

from defectlens.classify import FewShotClassifier, FewShotConfig, examples_from_category, load_taxonomy
from defectlens.evaluate.classification import evaluate_types
from tests.conftest import require_category


@pytest.mark.slow
def test_steel_strip_few_shot_small_sample():
    root = require_category("steel_strip")
    tax = load_taxonomy(root / "taxonomy.json", require_descriptions=True)
    examples, held_out = examples_from_category(root, k=3, seed=0)
    tax.require_types(examples.types, root / "test")
    assert not {e.path for e in examples.examples} & {h.path for h in held_out}
    # A smaller canvas and 8 held-out images per type keep this a smoke test (seconds, not minutes);
    # benchmarks/classify_bench.py measures the full sets.
    clf = FewShotClassifier(FewShotConfig(crop_side=128))
    clf.fit(examples.examples)
    sample = [h for t in examples.types for h in [x for x in held_out if x.defect_type == t][:8]]
    ev = evaluate_types(clf, sample)
    assert ev.n_images == 24 and not ev.skipped
    # What was measured is said: the category the images came from and the examples per type.
    assert (ev.to_json()["category"], ev.to_json()["k"]) == (root.name, 3)
    assert ev.accuracy >= 0.7, ev.to_json()
