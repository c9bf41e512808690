"""Frame check study: can a label-free rule tell "this is not the part" from the part?

A camera fault or the wrong part in front of the camera should never pass as a good part. Flat
frames (black, white, grey) already score far above every threshold, but a frame of sensor noise
passed as ``ok`` on the cookie model (top-1 % score 48.3 against its threshold 49.7: its map is
lifted everywhere, so its top 1 % is not higher than a normal cookie's). This study measures one
candidate statistic for a gate before any is built: how unusual the image's averaged patch
features are under a Gaussian of the normal images' averages (:class:`~defectlens.detect.global_score.GlobalScore`,
in units of the normal images' own out-of-fold spread), for

* the normal images themselves, out of fold (what a label-free limit can be set from),
* the test split's good and defective images,
* synthetic faulty frames (uniform noise, black, white, mid-grey), and
* other parts: up to 8 good test images of every other shared category, on this one's canvas.

For limits of ``f`` times the normal images' largest out-of-fold value it counts each group's
images over the limit: a gate must pass every good test image and stop every faulty frame and
other part (defective images over it are flagged either way). Features come from the detector
study's cache (``benchmarks/detector_study.py``); the frames and other parts are encoded here.

    python benchmarks/frame_check_study.py [--data ../shared/datasets] [--categories NAME ...] [--out DIR]

Writes ``frame_check_study.{json,md}`` in ``--out`` (default ``benchmarks/results``): a run adds or replaces its
categories, each with when and by which code it was measured (``measured``), and the tables name those kept from earlier
runs; the latest run's record is under ``run``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import detector_study as ds  # noqa: E402  (the study's feature cache)
from common import (  # noqa: E402  (the benchmarks' shared module)
    earlier_note,
    finish_record,
    has_normal_images,
    measured_stamp,
    require_categories,
    require_output_folder,
    run_record,
)
from defectlens.detect.global_score import GlobalScore, pooled_features  # noqa: E402
from defectlens.detect.maps import on_image_cells  # noqa: E402
from defectlens.encode import PatchEncoder  # noqa: E402
from defectlens.io import load_category, load_image  # noqa: E402
from defectlens.io.dataset import folder_any_case  # noqa: E402

CATEGORIES = ("ball_screw_drive", "commutator", "cookie", "magnetic_tile")
FACTORS = (1.5, 2.0, 3.0, 5.0)
OTHER_PART_IMAGES = 8
FRAME_SIDE = 512


def faulty_frames() -> dict[str, np.ndarray]:
    """Frames a faulty camera gives: seeded uniform noise and three flat ones."""
    rng = np.random.default_rng(0)
    side = (FRAME_SIDE, FRAME_SIDE, 3)
    return {
        "noise": rng.integers(0, 256, side, dtype=np.uint8),
        "black": np.zeros(side, np.uint8),
        "white": np.full(side, 255, np.uint8),
        "grey": np.full(side, 128, np.uint8),
    }


def study(data: Path, cache_dir: Path, name: str) -> dict:
    """Every group's units on one category, and each limit's share over it."""
    cache = ds.open_cache(data / name, cache_dir, "efficientnet-lite2", (2, 4), 256)
    encoder = PatchEncoder(cache.encoder)
    train = pooled_features(on_image_cells(cache.batches("train", list(range(len(cache.paths["train"]))), encoder)))
    model, out_of_fold = GlobalScore.fit(train)
    test = model.units(pooled_features(on_image_cells(cache.batches("test", list(range(len(cache.labels))), encoder))))
    labels = np.asarray(cache.labels)

    def units_of(images: list[np.ndarray]) -> np.ndarray:
        return model.units(pooled_features(on_image_cells([encoder.encode(images, cache.canvas)])))

    frames = faulty_frames()
    groups: dict[str, np.ndarray] = {
        "normal (out of fold)": out_of_fold,
        "good test": test[labels == 0],
        "defective test": test[labels == 1],
        **{f"frame: {k}": units_of([v]) for k, v in frames.items()},
    }
    for other in CATEGORIES:
        if other != name:
            goods = [t.path for t in load_category(data / other).test if not t.is_defective][:OTHER_PART_IMAGES]
            groups[f"other part: {other}"] = units_of([load_image(p) for p in goods])
    limit_base = float(out_of_fold.max())
    out = {
        "n_train": len(train),
        "groups": {g: {"n": len(v), "min": float(v.min()), "median": float(np.median(v)), "max": float(v.max())} for g, v in groups.items()},
        "limits": {},
    }
    for factor in FACTORS:
        limit = factor * limit_base
        out["limits"][f"{factor:g} x normal max"] = {"limit": limit, **{g: int(np.sum(v > limit)) for g, v in groups.items()}}
    print(name, json.dumps({g: round(s["max"], 1) for g, s in out["groups"].items()}), f"(load {os.getloadavg()[0]:.1f})", flush=True)
    return out


def write_tables(results: dict[str, dict], out: Path, earlier: list[str] | None = None) -> None:
    """Per category: each group's units (median / max), and how many of each group are over each limit; ``earlier``: the
    categories kept from earlier runs, named under the introduction."""
    lines = [
        "# Frame check study",
        "",
        "Global-feature units (the image's averaged patch features under a Gaussian of the normal images'; 0 = normal median,",
        "1 = the normal spread's unit) per group, and how many of each group (of n) are over limits of f x the normal images'",
        "largest out-of-fold value. A gate must pass every good test image and stop every faulty frame and other part.",
        "`python benchmarks/frame_check_study.py`.",
        *earlier_note(earlier or []),
    ]
    for name, r in sorted(results.items()):
        groups = list(r["groups"])
        lines += ["", f"## {name} ({r['n_train']} normal images)", "", "| group | n | median | max | " + " | ".join(r["limits"]) + " |",
                  "|---|---|---|---|" + "---|" * len(r["limits"])]
        for g in groups:
            s = r["groups"][g]
            shares = " | ".join(f"{r['limits'][k][g]}" for k in r["limits"])
            lines.append(f"| {g} | {s['n']} | {s['median']:.1f} | {s['max']:.1f} | {shares} |")
        lines.append("| (limit) | | | | " + " | ".join(f"{r['limits'][k]['limit']:.1f}" for k in r["limits"]) + " |")
    (out / "frame_check_study.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    """Run the study on the chosen categories and write the results."""
    parser = ds.cached_study_parser(__doc__ or "", CATEGORIES)
    args = parser.parse_args()
    # Checked before the work: a missing category had been a traceback, a missing --out folder one after minutes of it.
    names = require_categories(args.data, args.categories, lambda p: has_normal_images(p) and folder_any_case(p, "test").is_dir())
    # The other parts each category is compared with are read too: one missing had been a traceback after the first category.
    if missing := sorted({o for n in names for o in CATEGORIES if o != n and not folder_any_case(args.data / o, "test").is_dir()}):
        sys.exit(f"{args.data}: no test images of {', '.join(missing)}, the other parts each category is compared with")
    path = require_output_folder(args.out) / "frame_check_study.json"
    record = run_record()
    # Merged: a run on some categories replaces theirs and keeps the others' (the categories stay top-level keys).
    results = json.loads(path.read_text()) if path.is_file() else {}
    results.pop("run", None)
    results.update({name: {**study(args.data, args.cache, name), "measured": measured_stamp(record)} for name in names})
    path.write_text(json.dumps({**results, "run": {**finish_record(record), "categories": names}}, indent=1))
    write_tables(results, args.out, [n for n in results if n not in names])


if __name__ == "__main__":
    main()
