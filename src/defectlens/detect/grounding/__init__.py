"""Vision-language grounding: zero-shot anomaly maps and defect types from words (LLaVA-ADS style, CPU size).

Frozen EfficientNet-Lite patch features (made part-independent: per-image standardised, plus
self-similarity channels) go through a tiny trained connector into the 384-d space of the
all-MiniLM-L6-v2 sentence encoder. Two learned segmentation tokens live there —
``SEG_NORMAL`` and ``SEG_DEFECT``, shifted by the object name's embedding — and each patch's
anomaly value is its softmax probability of ``SEG_DEFECT``. Defect types are the taxonomy's
descriptions embedded by the same text encoder, so a new part or a new type needs only words.

Public surface (what ``defectlens inspect --grounding MODEL_DIR`` needs)::

    from defectlens.detect.grounding import GroundingModel
    from defectlens.taxonomy import load_taxonomy

    model = GroundingModel.load(model_dir)                  # ModelFileError on any bad file, fast
    results = model.predict(images, taxonomy=load_taxonomy(part_dir / "taxonomy.json", require_descriptions=True))
    r = results[0]                                          # defectlens.types.GroundingResult
    r.score            # float in [0, 1]
    r.anomaly_map      # float32 (H, W), original resolution, in [0, 1]
    r.type_names       # taxonomy's defect names
    r.type_maps        # float32 (T, H, W) patch–description similarity
    r.type_logit_scale # for the softmax over types

    # defect type per region, from text only (method='text'):
    from defectlens.classify.from_text import classify_from_grounding
    region_types = classify_from_grounding(r, inspection.region_labels)

    # look twice: fuse with the memory bank after normalising both on held-out normal images
    from defectlens.detect.calibration import normal_statistics
    from defectlens.detect.fusion import FusionConfig, fuse
    score, fused_map = fuse(mb.score, mb.anomaly_map, r.score, r.anomaly_map, mb_stats, g_stats, FusionConfig("sum", weight=0.2))

As a detector for the :class:`~defectlens.inspector.Inspector`: :class:`GroundingDetector`
(zero-shot, the model bound to one part's taxonomy). Fused with a memory bank (both normalised
on the same held-out normal images; ``defectlens fit --grounding``) it is a member of a
:class:`~defectlens.detect.fusion.FusedDetector`.

Training: :func:`train_grounding_model` (or ``defectlens train-grounding DIR... -o MODEL_DIR``).
``predict`` without a taxonomy uses the first training taxonomy.
"""

from defectlens.detect.grounding.detector import GroundingDetector
from defectlens.detect.grounding.model import TOKEN_NAMES, GroundingConfig, GroundingModel
from defectlens.detect.grounding.train import TrainingConfig, TrainingSummary, train_grounding_model

__all__ = [
    "TOKEN_NAMES",
    "GroundingConfig",
    "GroundingDetector",
    "GroundingModel",
    "TrainingConfig",
    "TrainingSummary",
    "train_grounding_model",
]
