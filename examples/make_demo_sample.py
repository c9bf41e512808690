"""Make the demo sample in ``examples/commutator/`` from the shared KolektorSDD category.

    python examples/make_demo_sample.py [--source ../shared/datasets/commutator] [--scale 0.5]

A fixed, spread-out pick of real images (every n-th file, sorted by name, so the same
command always makes the same sample), downsized by ``--scale`` and stored as JPEG (images)
and PNG (binary masks, resized nearest-neighbour so they stay 0 / 255):

    train/good/            normal images to fit on
    test/good/             normal images to inspect
    test/crack/            cracked parts to inspect, with ground_truth/crack/<stem>_mask.png
    validation/good/       other normal parts and cracked ones (masks in ground_truth/crack):
    validation/crack/      what `defectlens calibrate` sets the thresholds on
    examples/crack/        other cracked parts, without masks: defect-type examples
    taxonomy.json          copied from the source

The sample is the only copy of the data in the repository: it is small (a few MB) and its
licence (CC BY-NC-SA 4.0) allows sharing with attribution; see examples/commutator/README.md.
Only Pillow is needed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "datasets" / "commutator"
COUNTS = {"train_good": 60, "test_good": 8, "test_crack": 8, "examples_crack": 5, "validation_good": 8, "validation_crack": 8}
"""Images per part of the sample: enough to fit a memory bank and show both verdicts, small
enough that the whole demo runs in about a minute on two CPU cores."""
JPEG_QUALITY = 90


def spread(items: list[Path], n: int) -> list[Path]:
    """``n`` items evenly spread over ``items`` (sorted), deterministic."""
    if n >= len(items):
        return list(items)
    return [items[round(i * (len(items) - 1) / max(n - 1, 1))] for i in range(n)]


def _digest(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def _distinct(paths: list[Path]) -> list[Path]:
    """``paths`` without byte-copies of an earlier one."""
    seen: set[bytes] = set()
    kept = []
    for p in paths:
        if (d := _digest(p)) not in seen:
            seen.add(d)
            kept.append(p)
    return kept


CRACK_GUIDANCE = {
    "severity": "high",
    "impact": "a crack in the commutator opens under heat and speed: uneven brush contact, sparking and early motor failure",
    "action": "reject the part; if cracks repeat, check the moulding and the pressing of the segments upstream",
}
"""What a crack means and what to do, written by this project for the demo (KolektorSDD gives none):
without it every report read "impact not assessed", and the demo showed no "what to do"."""


def save_image(src: Path, dst: Path, scale: float) -> None:
    """Downsize ``src`` by ``scale`` and write it as a JPEG (grey stays grey)."""
    with Image.open(src) as im:
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im.convert("L" if im.mode in ("L", "I;16", "I") else "RGB").resize(size, Image.Resampling.LANCZOS).save(
            dst.with_suffix(".jpg"), quality=JPEG_QUALITY, optimize=True
        )


def save_mask(src: Path, dst: Path, scale: float) -> None:
    """Downsize a binary mask by ``scale`` (nearest neighbour: it stays 0 / 255) as PNG."""
    with Image.open(src) as im:
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        m = im.convert("L").resize(size, Image.Resampling.NEAREST).point(lambda v: 255 if v >= 128 else 0)
        m.save(dst, optimize=True)


def make_sample(source: Path, target: Path, scale: float) -> None:
    """Write the sample under ``target`` (replaced as a whole)."""
    # The shared split holds byte-copies: among its training images (6 of 250: one picked twice, `fit`
    # warned of it on every `make demo`), among its cracks (a test crack was a validation crack, the
    # threshold tuned on it), and of training images in test/good (8 of 97: a part the bank was built
    # from "inspected" as new). Each image is taken once, the first in name order, and a test good that
    # is a training image not at all.
    train = _distinct(sorted((source / "train" / "good").glob("*.jpg")))
    seen = {_digest(p) for p in train} | {_digest(p) for p in (source / "train" / "good").glob("*.jpg")}
    good = [p for p in _distinct(sorted((source / "test" / "good").glob("*.jpg"))) if _digest(p) not in seen]
    cracks = _distinct(sorted((source / "test" / "crack").glob("*.jpg")))
    if not train or not good or not cracks:
        raise SystemExit(f"{source}: not the commutator category (train/good, test/good, test/crack) — fix: pass --source")
    n_cracks = COUNTS["test_crack"] + COUNTS["examples_crack"] + COUNTS["validation_crack"]
    picked_cracks = spread(cracks, n_cracks)
    # Interleaved: the test images, the mask-free examples and the validation images each span
    # the whole sorted list (the source's train_ and val_ images alike).
    validation_crack = picked_cracks[1::2][: COUNTS["validation_crack"]]
    rest = [p for p in picked_cracks if p not in validation_crack]
    examples = rest[1::2][: COUNTS["examples_crack"]]
    test_crack = [p for p in rest if p not in examples]
    picked_good = spread(good, COUNTS["test_good"] + COUNTS["validation_good"])
    test_good, validation_good = picked_good[0::2], picked_good[1::2]
    if target.exists():
        shutil.rmtree(target)
    for sub in ("train/good", "test/good", "test/crack", "ground_truth/crack", "examples/crack", "validation/good", "validation/crack"):
        (target / sub).mkdir(parents=True)
    for p in spread(train, COUNTS["train_good"]):
        save_image(p, target / "train/good" / p.name, scale)
    for split, goods, bads in (("test", test_good, test_crack), ("validation", validation_good, validation_crack)):
        for p in goods:
            save_image(p, target / split / "good" / p.name, scale)
        for p in bads:
            save_image(p, target / split / "crack" / p.name, scale)
            save_mask(source / "ground_truth/crack" / f"{p.stem}_mask.png", target / "ground_truth/crack" / f"{p.stem}_mask.png", scale)
    for p in examples:
        save_image(p, target / "examples/crack" / p.name, scale)
    taxonomy = json.loads((source / "taxonomy.json").read_text(encoding="utf-8"))
    for defect in taxonomy.get("defects", []):
        if defect.get("name") == "crack":
            defect.update({k: v for k, v in CRACK_GUIDANCE.items() if not defect.get(k)})
    (target / "taxonomy.json").write_text(json.dumps(taxonomy, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the shared commutator category")
    parser.add_argument("--target", type=Path, default=HERE / "commutator", help="where the sample goes (replaced)")
    parser.add_argument("--scale", type=float, default=0.5, help="size factor of every image and mask")
    args = parser.parse_args()
    readme = args.target / "README.md"
    kept = readme.read_text(encoding="utf-8") if readme.is_file() else None
    make_sample(args.source, args.target, args.scale)
    if kept is not None:
        # The README (licence, citation) is written by hand; regenerating the images keeps it.
        readme.write_text(kept, encoding="utf-8")
    total = sum(p.stat().st_size for p in args.target.rglob("*") if p.is_file())
    print(f"sample written to {args.target}: {sum(1 for _ in args.target.rglob('*.jpg'))} images, {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
