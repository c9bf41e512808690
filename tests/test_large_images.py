"""Parts photographed larger than the canvas: scores, thresholds and pixel metrics read a lattice
of the map's pixels (it holds no finer detail), so memory and time stop growing with the image."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from defectlens.cli import app
from defectlens.detect import WORKING_PIXELS, image_score, working_view
from defectlens.detect.maps import for_calibration, smooth_map
from defectlens.errors import ImageReadError
from defectlens.types import AnomalyResult
from tests.conftest import write_spot_category


def _smooth_large_map(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A map as the detectors make them: a small smooth field resized up to the image's size."""
    small = torch.from_numpy(smooth_map(rng.normal(size=(64, 64)).astype(np.float32), 2.0))[None, None]
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()


def test_a_map_over_the_limit_is_read_on_a_lattice_and_scores_as_read_whole():
    rng = np.random.default_rng(0)
    small = np.zeros((512, 512), np.float32)
    assert working_view(small) is small and small.size == WORKING_PIXELS  # at the limit: every pixel
    large = _smooth_large_map(rng, 1500, 1100)
    view = working_view(large)
    assert view.base is large or view.base is large.base  # a view, nothing copied
    assert view.size <= WORKING_PIXELS < large.size and view[1, 1] == large[3, 3]  # stride 3
    whole = float(np.sort(large.ravel())[-round(large.size * 0.01) :].mean())
    assert image_score(large, 0.01) == pytest.approx(whole, rel=1e-2)
    # What a calibration keeps of each normal result: the lattice, copied, and the same score.
    result = AnomalyResult(score=image_score(large, 0.01), anomaly_map=large)
    kept = for_calibration(result)
    assert kept.anomaly_map.shape == view.shape and kept.anomaly_map.flags.c_contiguous
    assert image_score(kept.anomaly_map, 0.01) == result.score
    assert for_calibration(AnomalyResult(1.0, small)).anomaly_map is small


@pytest.fixture(scope="module")
def large_category(tmp_path_factory):
    """Normal and defective parts of 0.72 M pixels (read at stride 2 by the working view)."""
    return write_spot_category(tmp_path_factory.mktemp("large") / "sheet", np.random.default_rng(21), 720, 1000, 10,
                               [(200 + 150 * i, 300 + 200 * i, 90) for i in range(2)])


def test_large_parts_are_fitted_evaluated_and_inspected_at_their_own_size(large_category, tmp_path):
    runner = CliRunner()
    model = tmp_path / "model"
    fitted = runner.invoke(app, ["fit", str(large_category), "-o", str(model), "--image-size", "128"])
    assert fitted.exit_code == 0, fitted.output
    report = tmp_path / "eval.json"
    evaluated = runner.invoke(app, ["evaluate", str(model), str(large_category), "--json", str(report)])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(report.read_text())
    assert metrics["image_auroc"] == 1.0 and metrics["pixel_auroc"] > 0.9
    # Read on a lattice, and said so beside the metrics (a metrics audit found it said only in the README).
    assert metrics["pixel_strides"] == {"2": 4}
    assert "pixel metrics: images over 262,144 pixels are read on a lattice each way (4 image(s) at every 2nd pixel)" in " ".join(
        evaluated.output.split())
    # The outputs a person reads keep the image's own size.
    out = tmp_path / "out"
    inspected = runner.invoke(app, ["inspect", str(model), str(large_category / "test" / "spot"), "-o", str(out)])
    assert inspected.exit_code == 0, inspected.output
    verdicts = [json.loads(p.read_text()) for p in sorted(out.glob("[0-9][0-9][0-9].json"))]
    assert len(verdicts) == 2 and all(v["is_defective"] and v["image_size"] == [1000, 720] for v in verdicts)
    assert all(Image.open(p).size == (1000, 720) for p in sorted(out.glob("[0-9][0-9][0-9].png")))


def test_fit_reads_its_images_from_disk_as_it_encodes_them(large_category, tmp_path, monkeypatch):
    # The CLI checks each image once (shape, digest) and the fit reads them again batch by batch:
    # never every image's pixels at once, and the same model as from images held in memory.
    from defectlens import Inspector, InspectorSettings
    from defectlens.descriptor import fingerprint_images
    from defectlens.inspector import scan_images
    from defectlens.io import ImageFiles, load_image

    paths = sorted((large_category / "train" / "good").glob("*.png"))
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    files, failures = scan_images([*paths, bad])
    assert isinstance(files, ImageFiles) and len(files) == len(paths) and [f.source for f in failures] == [str(bad)]
    assert files.shapes[0] == (720, 1000, 3) and isinstance(files[1], np.ndarray) and len(files[2:5]) == 3

    held: list[int] = []
    real_load = load_image

    def counting(path, bit_depth=None):  # counts the images the fit decodes
        image = real_load(path, bit_depth)
        held.append(1)
        return image

    monkeypatch.setattr("defectlens.io.images.load_image", counting)
    settings = InspectorSettings(image_size=128)
    from_disk = Inspector.fit(files, settings)
    assert len(held) == len(paths)  # each read once by the fit (its shapes and digest came from the scan)
    monkeypatch.undo()
    in_memory = Inspector.fit([load_image(p) for p in paths], settings)
    assert from_disk.thresholds == in_memory.thresholds
    assert from_disk.provenance.fingerprint == in_memory.provenance.fingerprint == fingerprint_images([load_image(p) for p in paths])
    # A list of paths from Python is read from disk as the fit goes too (API probe: the README's own
    # Inspector.fit(cat.train_good) decoded every image into one list first), to the same model.
    from defectlens.detect.memory_bank import MemoryBankDetector

    given: list[object] = []
    real_fit = MemoryBankDetector.fit

    def recording(self, images, progress=None):
        given.append(images)
        return real_fit(self, images, progress=progress)

    monkeypatch.setattr(MemoryBankDetector, "fit", recording)
    from_list = Inspector.fit([str(p) for p in paths], settings)
    assert isinstance(given[0], ImageFiles) and from_list.thresholds == in_memory.thresholds
    with pytest.raises(ImageReadError, match=r"broken\.png"):
        Inspector.fit([*paths, bad], settings)


def test_pixel_metrics_keep_within_their_budget_on_a_large_test_set(large_category, tmp_path, monkeypatch):
    # A test set whose working views would pass the budget is read on a coarser lattice, evenly.
    from defectlens import Inspector, InspectorSettings
    from defectlens.evaluate import harness
    from defectlens.inspector import scan_images
    from defectlens.io import load_category

    files, _ = scan_images(sorted((large_category / "train" / "good").glob("*.png")))
    inspector = Inspector.fit(files, InspectorSettings(image_size=128))
    category = load_category(large_category)
    _, whole = harness.evaluate_detection(inspector, category)
    assert whole.pixels.n_pixels == 4 * (720 // 2) * (1000 // 2)  # 4 test images, each at stride 2 (0.72 M > 262 144)
    monkeypatch.setattr(harness, "PIXEL_METRICS_BUDGET", 200_000)
    evaluation, thin = harness.evaluate_detection(inspector, category)
    assert thin.pixels.n_pixels <= 200_000 and thin.pixels.n_regions == whole.pixels.n_regions == 2
    assert evaluation.metrics.pixel_auroc > 0.9


def test_the_budget_thins_only_the_largest_images_and_only_when_the_set_passes_it():
    from defectlens.evaluate.harness import pixels_per_image

    # Under the budget together: every image read at its working view, however many there are.
    assert pixels_per_image([60_000] * 700 + [90_000] * 44, budget=50_000_000) == WORKING_PIXELS
    # Over it: the largest limit that fits; the small images stay whole, the large are thinned.
    areas = [10_000] * 10 + [1_000_000] * 4
    limit = pixels_per_image(areas, budget=500_000)
    assert sum(min(a, limit) for a in areas) <= 500_000 < sum(min(a, limit + 1) for a in areas)
    assert limit == (500_000 - 100_000) // 4


def test_an_overlay_longer_than_a_jpeg_can_be_is_refused_with_the_format_that_takes_it(fitted_model, tmp_path):
    # Camera probe 2026-12-07: a 70 000-pixel line scan with --overlay jpg was inspected, then its results were "not written",
    # with the fix to free disk space and resume, which could not help.
    line = tmp_path / "scan.png"
    Image.fromarray(np.random.default_rng(7).integers(0, 255, (16, 65_600), dtype=np.uint8)).save(line)
    result = CliRunner().invoke(app, ["inspect", str(fitted_model), str(line), "-o", str(tmp_path / "out"), "--overlay", "jpg"])
    said = " ".join(result.output.split())
    assert "is longer than a JPEG can be (65,500 pixels) — fix: run again with --overlay png (or none) and --resume" in said, said
    assert not (tmp_path / "out" / "scan.json").exists()
    again = CliRunner().invoke(app, ["inspect", str(fitted_model), str(line), "-o", str(tmp_path / "out"), "--overlay", "png", "--resume"])
    assert again.exit_code == 0 and (tmp_path / "out" / "scan.json").is_file(), again.output
