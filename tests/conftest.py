"""Shared fixtures: a small synthetic category in MVTec-AD layout, and the real data root."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

# pytest-xdist's workers are given COLUMNS=80 and LINES=24 (they have no terminal): the commands' console then wraps at 80
# where a serial run's writes 200 wide, and text the tests look for is cut by table borders. Taken out before any test
# imports the command line, so both runs see what a user's piped run sees.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)


def data_root() -> Path:
    """The shared datasets ($DEFECTLENS_DATA or ../shared/datasets beside the repo)."""
    return Path(os.environ.get("DEFECTLENS_DATA", REPO.parent / "shared" / "datasets"))


def require_category(name: str) -> Path:
    """Path of a real category, or skip the test when the shared data is absent."""
    path = data_root() / name
    if not path.is_dir():
        pytest.skip(f"shared dataset {path} not present")
    return path


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A grey brushed-metal-like texture: vertical streaks plus fine noise."""
    streaks = rng.normal(0, 12, size=(1, w)).repeat(h, axis=0)
    noise = rng.normal(0, 6, size=(h, w))
    base = 120 + streaks + noise
    return np.clip(base, 0, 255).astype(np.uint8)


def plant_square(img: np.ndarray, y: int, x: int, size: int, value: int = 250) -> np.ndarray:
    """Return a copy with a bright square defect; also returns nothing else (mask built by caller)."""
    out = img.copy()
    out[y : y + size, x : x + size] = value
    return out


def write_spot_category(root: Path, rng: np.random.Generator, h: int, w: int, n_train: int, spots: list[tuple[int, int, int]]) -> Path:
    """An MVTec-layout category of textures at ``root``: ``n_train`` normal train images, as many
    normal test images as ``spots``, and one defective test image per spot ``(y, x, side)`` (a
    bright square) with its mask."""
    for sub in ("train/good", "test/good", "test/spot", "ground_truth/spot"):
        (root / sub).mkdir(parents=True)
    for i in range(n_train):
        Image.fromarray(texture(rng, h, w)).save(root / "train/good" / f"{i:03d}.png")
    for i in range(len(spots)):
        Image.fromarray(texture(rng, h, w)).save(root / "test/good" / f"{i:03d}.png")
    for i, (y, x, s) in enumerate(spots):
        img = plant_square(texture(rng, h, w), y, x, s)
        mask = np.zeros((h, w), np.uint8)
        mask[y : y + s, x : x + s] = 255
        Image.fromarray(img).save(root / "test/spot" / f"{i:03d}.png")
        Image.fromarray(mask).save(root / "ground_truth/spot" / f"{i:03d}_mask.png")
    return root


@pytest.fixture(scope="session")
def synthetic_category(tmp_path_factory) -> Path:
    """12 normal train images, 4 normal + 4 defective test images (bright squares) with masks."""
    root = write_spot_category(tmp_path_factory.mktemp("data") / "plate", np.random.default_rng(7), 96, 128, 12,
                               [(20 + 10 * i, 30 + 15 * i, 16) for i in range(4)])
    (root / "taxonomy.json").write_text(
        json.dumps({"object": "metal plate", "defects": [{"name": "spot", "description": "a bright square spot"}]})
    )
    return root


@pytest.fixture(scope="session")
def fitted_model(synthetic_category, tmp_path_factory) -> Path:
    """A model directory fitted on the synthetic category (real EfficientNet-Lite weights, the default backbone)."""
    from defectlens import Inspector, InspectorSettings
    from defectlens.io import load_category, load_image

    images = [load_image(p) for p in load_category(synthetic_category).train_good]
    inspector = Inspector.fit(images, InspectorSettings(image_size=128, coreset_ratio=0.5))
    out = tmp_path_factory.mktemp("model")
    inspector.save(out)
    return out
