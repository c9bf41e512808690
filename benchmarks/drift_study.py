"""Study: how far a line's images drift from the normal ones (``Inspection.frame_units``) when the camera or light changes.

A camera that loses focus, or a change of gain or compression, moves every image away from the normal images a model was
fitted on before any single image crosses the frame check's limit, and false alarms rise first. This study draws good and
defective test images of each shared category with normal images, alters the good ones (blur, gain, JPEG) and records,
per set, the median frame distance, the share beyond 1 (the normal images' 98th percentile: what
:func:`defectlens.detect.frame_check.drift_note` counts) and the share flagged: whether the drift note separates a drifted
line from an ordinary one, defective parts included.

    .venv/bin/python benchmarks/drift_study.py [--data ../shared/datasets] [--model cookie=runs/cookie ...] [--n 20]

Each category's model is fitted with the default settings on every normal image unless ``--model CATEGORY=DIR`` names a
saved one. Writes ``drift_study.{json,md}`` in ``--out`` (default ``benchmarks/results``), with the run's record under ``run``.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from defectlens import Inspector
from defectlens.detect.frame_check import DRIFT_UNITS
from defectlens.io import load_category, write_json_atomic
from defectlens.io.dataset import folder_any_case

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402 - the benchmarks' shared module
    add_data_argument,
    finish_record,
    has_normal_images,
    require_categories,
    require_output_folder,
    run_record,
    saved_models,
)

RESULTS = REPO / "benchmarks" / "results"


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _gain(image: Image.Image, factor: float) -> Image.Image:
    return Image.fromarray(np.clip(np.asarray(image, np.float32) * factor, 0, 255).astype(np.uint8))


ALTERATIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "good, blurred σ = 1": lambda im: im.filter(ImageFilter.GaussianBlur(1)),
    "good, blurred σ = 2": lambda im: im.filter(ImageFilter.GaussianBlur(2)),
    "good, gain +15 %": lambda im: _gain(im, 1.15),
    "good, gain −15 %": lambda im: _gain(im, 0.85),
    "good, JPEG quality 70": lambda im: _jpeg(im, 70),
}
"""What a line's camera or light may do to good parts, each applied to the same drawn good images."""


def study(inspector: Inspector, root: Path, n: int) -> dict[str, dict]:
    """Per set of images (good, defective, each alteration of the good ones): median frame distance, share beyond
    :data:`DRIFT_UNITS`, share flagged."""
    items = load_category(root).require_test()
    rng = np.random.default_rng(0)
    good = [i.path for i in items if not i.is_defective]
    bad = [i.path for i in items if i.is_defective]
    good = [good[k] for k in rng.choice(len(good), min(n, len(good)), replace=False)]
    bad = [bad[k] for k in rng.choice(len(bad), min(n, len(bad)), replace=False)]
    originals = [Image.open(p).convert("RGB") for p in good]
    sets: dict[str, list] = {"good": [np.asarray(im) for im in originals], "defective": [np.asarray(Image.open(p).convert("RGB")) for p in bad]}
    sets |= {name: [np.asarray(alter(im)) for im in originals] for name, alter in ALTERATIONS.items()}
    out = {}
    for name, images in sets.items():
        inspections = [inspector.inspect(image) for image in images]
        units = np.array([i.frame_units for i in inspections if i.frame_units is not None])
        out[name] = {
            "n": len(images),
            "median_frame_units": round(float(np.median(units)), 3) if len(units) else None,
            "share_beyond": round(float(np.mean(units > DRIFT_UNITS)), 3) if len(units) else None,
            "share_flagged": round(float(np.mean([i.is_defective for i in inspections])), 3),
        }
        print(root.name, name, out[name], flush=True)
    return out


def main() -> None:
    """Fit (or load) each category's model and measure every set's frame distance; write the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_argument(parser)
    parser.add_argument("--model", action="append", default=[], help="CATEGORY=DIR of a saved model (else fitted here)")
    parser.add_argument("--n", type=int, default=20, help="good and defective test images drawn per category (seeded)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    names = require_categories(args.data, None, lambda p: has_normal_images(p) and folder_any_case(p, "test").is_dir())
    saved = saved_models(args.model, args.data, names)
    # Made before the models are fitted: a missing --out folder had been found only after them.
    out = require_output_folder(args.out)
    record = run_record()
    results = {}
    for root in (args.data / n for n in names):
        inspector = Inspector.load(saved[root.name]) if root.name in saved else Inspector.fit(folder_any_case(root, "train", "good"))
        results[root.name] = study(inspector, root, args.n)
    # The run's record beside the categories, which stay top-level keys as the README reads them.
    write_json_atomic(out / "drift_study.json", {**results, "run": finish_record(record)})
    names = list(next(iter(results.values())))
    lines = ["| images | " + " | ".join(results) + " |", "|---" * (len(results) + 1) + "|"]
    for name in names:
        # A model without the frame check (fitted on under 30 normal images) has no distances: "–", where the table had
        # failed after the whole run.
        cells = [f"{r[name]['median_frame_units']} ("
                 + ("–" if r[name]["share_beyond"] is None else f"{r[name]['share_beyond']:.0%}")
                 + f" beyond 1, {r[name]['share_flagged']:.0%} flagged)" for r in results.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (out / "drift_study.md").write_text("Median frame distance (share beyond 1, share flagged)\n\n" + "\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
