"""Canvas placement keeps aspect ratio and maps back exactly; regions describe components."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from defectlens.encode import CanvasSpec, map_to_original, mask_to_grid, place
from defectlens.locate import extract_regions


def test_canvas_aspect_follows_training_images():
    spec = CanvasSpec.for_sizes([(250, 620), (250, 630)], 256)
    assert spec.height % 32 == 0 and spec.width % 32 == 0
    assert spec.height > 2 * spec.width  # tall parts get a tall canvas
    # Strips up to 16:1 get a canvas of their shape (small-shop probe 2026-12-07: capped at 4:1, a 20:1 strip filled a fifth
    # of the canvas and a 30-pixel defect went unseen); longer ones the 16:1 canvas, four coarse cells across.
    assert CanvasSpec.for_sizes([(2560, 200)], 256) == CanvasSpec(64, 928)
    assert CanvasSpec.for_sizes([(4000, 200)], 256) == CanvasSpec(64, 1024) == CanvasSpec.for_sizes([(20000, 200)], 256)
    assert CanvasSpec.for_sizes([(200, 4000)], 256) == CanvasSpec(1024, 64)


def test_place_is_not_squashed_and_maps_back():
    img = np.zeros((100, 300, 3), np.uint8)
    img[:, 150:] = 200  # right half bright
    canvas, p = place(img, CanvasSpec(128, 128))
    assert canvas.shape == (128, 128, 3)
    assert abs(p.width / p.height - 3.0) < 0.1  # aspect kept
    # A map equal to the canvas brightness maps back to the original halves.
    back = map_to_original(torch.from_numpy(canvas[..., 0].astype(np.float32)), p)
    assert back.shape == (100, 300)
    assert back[:, :140].mean() < 20 and back[:, 160:].mean() > 180


def test_mask_to_grid_marks_covered_cells():
    mask = np.zeros((64, 64), bool)
    mask[:32, :32] = True
    _, p = place(np.zeros((64, 64, 3), np.uint8), CanvasSpec(64, 64))
    grid = mask_to_grid(mask, p, CanvasSpec(64, 64), (8, 8))
    assert grid[:4, :4].min() > 0.9 and grid[4:, 4:].max() < 0.1


def test_regions_are_sorted_by_peak_and_measured():
    amap = np.zeros((50, 60), np.float32)
    amap[5:15, 5:25] = 1.0  # 10x20 = 200 px, peak 1
    amap[30:40, 40:50] = 2.0  # 100 px, peak 2
    amap[45, 0] = 5.0  # single pixel: below the minimum area
    mask, labels, regions = extract_regions(amap, 0.5, min_area_px=4)
    assert [r.area_px for r in regions] == [100, 200]
    first = regions[0]
    assert first.index == 1 and first.peak_score == 2.0 and first.bbox == (40, 30, 50, 40)
    assert first.centroid == (44.5, 34.5) and abs(first.area_fraction - 100 / 3000) < 1e-9
    assert (labels == 1).sum() == 100 and not mask[45, 0]
    assert first.peak == (40, 30) and regions[1].peak == (5, 5)  # the first pixel at the top, in reading order
    # Back from its JSON, a region is the same hashable region (API probe 2026-12-06: its lists left it unhashable), and
    # its peak is written unrounded, as the image's score is (read against the pixel threshold).
    from dataclasses import replace

    from defectlens.types import Region

    again = Region(**first.to_json())
    assert again == replace(first, area_fraction=round(first.area_fraction, 6)) and hash(again)
    near = replace(first, peak_score=0.5 + 1e-9)
    assert near.to_json()["peak_score"] > 0.5


def test_a_region_is_placed_where_its_map_peaks():
    # A probe's pit at the left of a ball screw was reported at the "right edge": its region, raised
    # around a strong peak, reached across the part and its centroid lay right of the pit.
    from defectlens.explain import build_report
    from defectlens.types import Inspection

    h, w = 90, 300
    yy, xx = np.mgrid[0:h, 0:w]
    amap = (5.0 * np.exp(-((xx - 40) ** 2 + (yy - 45) ** 2) / 800.0) + (xx >= 40) * 1.2).astype(np.float32)
    mask, labels, regions = extract_regions(amap, 1.0)
    (region,) = regions
    assert region.peak == (40, 45) and region.centroid[0] > w / 2 and region.to_json()["peak"] == [40, 45]
    inspection = Inspection("p.png", (w, h), 5.0, True, amap, mask, regions, region_labels=labels)
    assert build_report(inspection).findings[0].location.startswith("left")


def test_no_regions_below_threshold():
    mask, labels, regions = extract_regions(np.zeros((10, 10), np.float32), 0.1)
    assert regions == [] and not mask.any() and not labels.any()


@pytest.mark.parametrize("band_pixels", [None, 50])
def test_regions_measure_what_scipy_measures_on_many_random_maps(band_pixels, monkeypatch):
    # Sums over the thresholded pixels replace ndimage's per-label measurements (which sort the
    # whole map per call): the same regions, order, labels and numbers — also gathered a band of
    # rows at a time (50 pixels: regions cross many bands), as on maps of tens of megapixels.
    from scipy import ndimage

    from defectlens.detect.maps import smooth_map
    from defectlens.locate import regions as regions_module

    if band_pixels is not None:
        monkeypatch.setattr(regions_module, "REGION_BAND_PIXELS", band_pixels)

    rng = np.random.default_rng(0)
    for _ in range(20):
        h, w = (int(v) for v in rng.integers(20, 200, 2))
        amap = smooth_map(rng.normal(size=(h, w)).astype(np.float32), float(rng.uniform(0.5, 3)))
        t = float(np.quantile(amap, rng.uniform(0.6, 0.98)))
        mask, labels, regions = extract_regions(amap, t, min_area_px=3)
        raw, n = ndimage.label(amap > t, structure=np.ones((3, 3), bool))
        ids = np.arange(1, n + 1)
        areas = ndimage.sum_labels(np.ones_like(raw), raw, ids)
        peaks = ndimage.maximum(amap, raw, ids)
        kept = sorted((i for i in range(n) if areas[i] >= 3), key=lambda i: -peaks[i])
        assert [r.area_px for r in regions] == [int(areas[i]) for i in kept]
        assert [r.peak_score for r in regions] == [float(peaks[i]) for i in kept]
        means = ndimage.mean(amap, raw, ids)
        centres = ndimage.center_of_mass(np.ones_like(amap), raw, ids)
        for r, i in zip(regions, kept, strict=True):
            assert r.mean_score == pytest.approx(float(means[i]), rel=1e-9)
            assert r.centroid == pytest.approx((centres[i][1], centres[i][0]), rel=1e-9)
            assert (labels == r.index).sum() == r.area_px and ((raw == i + 1) == (labels == r.index)).all()
        assert (mask == (labels > 0)).all()


def test_overlay_blends_the_map_and_outlines_the_mask():
    # Rows: map at the scale's low end (the part shows through), at its top (the heat colour
    # dominates); a masked square is outlined in the region colour; the verdict band on top.
    from defectlens.locate import render_overlay
    from defectlens.locate.overlay import REGION_COLOUR
    from defectlens.types import Inspection

    h, w = 60, 80
    image = np.full((h, w, 3), 200, np.uint8)
    amap = np.zeros((h, w), np.float32)
    amap[30:] = 10.0
    mask = np.zeros((h, w), bool)
    mask[40:55, 50:70] = True
    inspection = Inspection("x.png", (w, h), 9.0, True, amap, mask)
    out = np.asarray(render_overlay(image, inspection, 0.0, 10.0))
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    cool, hot = out[20, 40].astype(int), out[35, 40].astype(int)
    # 15 % of the lowest heat colour (black) over grey 200: 170 in every channel.
    assert np.all(np.abs(cool - 170) <= 1)
    # Near the top of the colour map (pale yellow) at 65 %: red well above blue.
    assert hot[0] > hot[2] + 40
    assert tuple(out[40, 60]) == REGION_COLOUR and tuple(out[47, 60]) != REGION_COLOUR


def test_overlay_names_each_region_with_its_index(monkeypatch):
    # A probe's "uneven, uneven" labels could not be matched to the report's rows: "#1 uneven".
    from PIL import ImageDraw

    from defectlens.locate import extract_regions, render_overlay
    from defectlens.types import Inspection

    amap = np.zeros((60, 80), np.float32)
    amap[5:15, 5:15], amap[40:50, 50:60] = 9.0, 8.0
    mask, labels, regions = extract_regions(amap, 1.0)
    inspection = Inspection("x.png", (80, 60), 9.0, True, amap, mask, regions, region_labels=labels)
    drawn: list[str] = []
    real_text = ImageDraw.ImageDraw.text
    monkeypatch.setattr(ImageDraw.ImageDraw, "text", lambda self, xy, text, *a, **k: (drawn.append(text), real_text(self, xy, text, *a, **k))[1])
    render_overlay(np.full((60, 80, 3), 128, np.uint8), inspection, 0.0, 10.0, ["uneven", "uneven"])
    assert drawn[:2] == ["#1 uneven", "#2 uneven"] and drawn[2].startswith("DEFECTIVE")  # then the caption
    drawn.clear()
    render_overlay(np.full((60, 80, 3), 128, np.uint8), inspection, 0.0, 10.0)
    assert drawn[:2] == ["#1", "#2"]
    # A region whose peak stays under the image threshold is drawn dimmer and said weaker, as the report lists it.
    from defectlens.locate.overlay import REGION_COLOUR, WEAKER_COLOUR
    from defectlens.types import Thresholds

    weighed = Inspection("x.png", (80, 60), 9.0, True, amap, mask, regions, region_labels=labels, thresholds=Thresholds(8.5, 1.0))
    drawn.clear()
    out = np.asarray(render_overlay(np.full((60, 80, 3), 128, np.uint8), weighed, 0.0, 10.0, ["uneven", "uneven"]))
    # (On 80 pixels "#2 uneven (weaker)" had run off the image: its index and the word only, which fit.)
    assert drawn[:2] == ["#1 uneven", "#2 (weaker)"]
    around_second, around_first = out[35:55, 45:65], out[0:20, 0:20]
    assert (around_second == WEAKER_COLOUR).all(-1).any() and not (around_second == REGION_COLOUR).all(-1).any()
    assert (around_first == REGION_COLOUR).all(-1).any()


def test_overlay_text_grows_with_the_image():
    # The bitmap font's 11 pixels on a 1240-pixel part were unreadable once the gallery showed it
    # 260 pixels tall; small parts keep it.
    from defectlens.locate.overlay import LARGEST_TEXT, SMALLEST_TEXT, render_outlines, text_size

    assert text_size(256, 256) == SMALLEST_TEXT and text_size(250, 627) == 14 and text_size(9000, 9000) == LARGEST_TEXT
    grey = np.full((900, 1800, 3), 128, np.uint8)
    band = np.asarray(render_outlines(grey, [], caption="DEFECTIVE"))[: text_size(1800, 900), :3]
    assert band.shape[0] == 40 and (band == 0).all(axis=2).any() and (band[-1, :3] == 0).all()
    small = np.asarray(render_outlines(np.full((200, 300, 3), 128, np.uint8), [], caption="DEFECTIVE"))
    assert (small[SMALLEST_TEXT + 3] == 128).all()  # the band ends under the small text


def test_the_caption_goes_to_the_corner_where_it_hides_least_and_names_stay_off_other_boxes():
    # Report probe 2026-12-06: the score band, always at the top left, hid magnetic tiles' corner breaks and a whole region
    # whose name pointed at nothing; "#1" of a region over most of the frame was drawn on #2's outline.
    from PIL import Image, ImageDraw

    from defectlens.locate.overlay import REGION_COLOUR, _caption_box, render_outlines, render_overlay
    from defectlens.types import Inspection, Region, Thresholds

    grey = np.full((100, 200, 3), 128, np.uint8)
    corner = np.zeros((100, 200), bool)
    corner[:30, :40] = True
    draw = ImageDraw.Draw(Image.fromarray(grey))
    x0, y0, x1, y1 = _caption_box(draw, Image.fromarray(grey), "DEFECTIVE", corner)
    assert (x0, y0) != (0, 0) and not corner[y0:y1, x0:x1].any()
    assert _caption_box(draw, Image.fromarray(grey), "DEFECTIVE", None)[:2] == (0, 0)  # nothing to hide: the top left
    drawn = np.asarray(render_outlines(grey, [(corner, (0, 255, 0))], caption="DEFECTIVE"))
    assert (drawn[y0:y1, x0:x1] == 0).all(axis=2).any() and not (drawn[:5, 50:60] == 0).all()
    # "#1" of a region over the whole frame keeps off the box of region 2 (weaker: its name and outline in another colour).
    small = np.zeros((100, 200), bool)
    small[8:38, 0:41] = True
    regions = [Region(1, (0, 0, 200, 100), 18770, 0.94, (100.0, 50.0), 9.0, 6.0), Region(2, (0, 8, 41, 38), 1230, 0.06, (20.0, 23.0), 4.5, 4.0)]
    insp = Inspection("p.png", (200, 100), 9.0, True, np.full((100, 200), 6.0, np.float32), np.ones((100, 200), bool), regions,
                      Thresholds(5.0, 5.0), np.where(small, 2, 1).astype(np.int32))
    picture = np.asarray(render_overlay(grey, insp, 0.0, 10.0))
    named = np.abs(picture[13:37, 1:40].astype(int) - np.array(REGION_COLOUR)).sum(axis=2) < 60  # its letters, anti-aliased
    assert not named.any()


def test_on_a_small_image_names_stay_on_it_and_off_each_other_and_the_band_off_a_hot_spot(monkeypatch):
    # Regression probe 2026-12-06: on 64 x 48 pixels "#3 t3 (weaker)" ran off the image and weaker names were drawn over
    # the counted ones; the band blacked out a good part's hot spot at the top edge.
    from PIL import Image, ImageDraw

    from defectlens.locate import extract_regions, render_overlay
    from defectlens.locate.overlay import _caption_box
    from defectlens.types import Inspection, Thresholds

    amap = np.zeros((48, 64), np.float32)
    for (y, x), peak in zip(((3, 3), (3, 40), (30, 5), (30, 30), (30, 50)), (9.0, 8.8, 4.0, 3.9, 3.8), strict=True):
        amap[y : y + 6, x : x + 6] = peak
    mask, labels, regions = extract_regions(amap, 1.0)
    insp = Inspection("x.png", (64, 48), 9.0, True, amap, mask, regions, Thresholds(5.0, 1.0), labels)
    boxes: list[tuple[str, tuple[int, int, int, int]]] = []
    real_text = ImageDraw.ImageDraw.text

    def record(self, xy, text, *a, **k):
        box = self.textbbox(xy, text, font=k.get("font"), stroke_width=k.get("stroke_width", 0))
        boxes.append((text, tuple(int(v) for v in box)))
        return real_text(self, xy, text, *a, **k)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", record)
    render_overlay(np.full((48, 64, 3), 128, np.uint8), insp, 0.0, 10.0, [f"t{i}" for i in range(1, 6)])
    names = [(t, b) for t, b in boxes if t.startswith("#")]
    assert {t.split()[0] for t, _ in names} >= {"#1", "#2"}  # the counted regions are named
    assert all(b[0] >= 0 and b[2] <= 64 for _, b in names), names  # none runs off the image
    for i, (_, a) in enumerate(names):
        assert all(a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1] for _, b in names[i + 1 :]), names
    good = Inspection("g.png", (200, 100), 1.0, False, np.zeros((100, 200), np.float32), np.zeros((100, 200), bool), [],
                      Thresholds(5.0, 1.0), hot_spot=(10, 2))
    covered = np.zeros((100, 200), bool)
    covered[0:9, 4:17] = True
    picture = Image.fromarray(np.full((100, 200, 3), 128, np.uint8))
    band = _caption_box(ImageDraw.Draw(picture), picture, "GOOD  score 1.00", covered)
    assert band[:2] != (0, 0)
    boxes.clear()
    render_overlay(np.full((100, 200, 3), 128, np.uint8), good, 0.0, 10.0)
    assert not any(t.startswith("GOOD") and b[0] < 16 and b[1] < 8 for t, b in boxes), boxes


def test_region_names_stay_whole_and_clear_of_the_caption():
    # Probe 2026-12-05: a name at the right edge was cut to "unknow", and one at the top left was
    # hidden under the score band.
    from defectlens.locate.overlay import label_position

    band = [(0, 0, 60, 11)]
    assert label_position((50, 50, 60, 60), 30, 10, (200, 100), band) == (52, 40)  # above its box
    assert label_position((190, 50, 200, 60), 40, 10, (200, 100), band) == (159, 40)  # moved in from the edge, whole
    assert label_position((5, 3, 20, 20), 30, 10, (200, 100), band) == (7, 12)  # below the caption, not under it
    assert label_position((100, 95, 110, 100), 30, 10, (200, 100), band) == (102, 85)
    # Nor over a name drawn before (zero-shot probe: "#9 crack" over "#10 crack" read "#9 crackk").
    drawn = [*band, (52, 40, 82, 50)]
    assert label_position((55, 52, 70, 70), 30, 10, (200, 100), drawn) == (57, 51)
    # With no room below, above the name in its way (tablet probe 2026-12-06: two boxes at the bottom edge drew "#4 c#6ack"),
    # else beside it; never out of the picture.
    assert label_position((55, 88, 70, 100), 30, 10, (200, 100), [*band, (52, 78, 82, 89)]) == (57, 67)
    wall = [(0, 0, 200, 11), (0, 12, 60, 89), (62, 12, 200, 77)]  # room only right of the first block, low down
    assert label_position((55, 88, 70, 100), 30, 10, (200, 100), [*wall, (52, 78, 82, 89)]) == (83, 78)
    assert label_position((55, 88, 70, 100), 30, 10, (200, 100), [(0, 0, 200, 100)]) == (57, 78)  # nowhere clear: as put


def test_type_names_beyond_ascii_are_drawn_in_a_font_that_has_them():
    # Language probe 2026-12-06: Pillow's own font drew "Ölfleck" as "▯lfleck" and Japanese names as boxes alone.
    from defectlens.locate.overlay import _drawable, _draws, _font

    font, text = _drawable("#1 crack", 20, "#1")
    assert font is _font(20) and text == "#1 crack"  # ASCII: Pillow's font, as before
    assert not _draws(_font(20), "Ö")  # why another font is needed
    font, text = _drawable("#1 Ölfleck", 20, "#1")
    if text == "#1":
        pytest.skip("no installed font draws Ö (fonts-dejavu-core)")
    assert text == "#1 Ölfleck" and _draws(font, "Ö")
    # A name no font can draw: the index alone, not boxes.
    assert _drawable("#2 \U0010fffd\U0010fffe", 20, "#2")[1] == "#2"


@pytest.mark.parametrize(("size", "label", "boxes"), [
    ((1024, 128), "crack", [(x, 110, x + 20, 128) for x in range(0, 1024, 40)]),
    # An installed font's accents and descenders reach beyond the text size: names stacked had run into each other.
    ((400, 300), "Ölgyp", [(150, 40 + 12 * i, 170, 50 + 12 * i) for i in range(8)]),
])
def test_names_on_a_crowded_edge_find_the_room_there_is(monkeypatch, size, label, boxes):
    # Regression probe 2026-12-06: 26 regions along the bottom of a 1024 x 128 strip drew "#22 cra#26 crack", with the
    # strip beside the caption empty: each name had been moved one way only from where it was put; and side by side,
    # two names' dark strokes touched.
    from PIL import ImageDraw

    from defectlens.locate.overlay import render_overlay
    from defectlens.types import Inspection, Region

    drawn: list[tuple[int, int, int, int]] = []
    text = ImageDraw.ImageDraw.text

    def spy(self, xy, shown, *args, **kwargs):
        if str(shown).startswith("#"):
            drawn.append(self.textbbox(xy, shown, font=kwargs.get("font"), stroke_width=kwargs.get("stroke_width", 0)))
        return text(self, xy, shown, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", spy)
    w, h = size
    mask = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = True
    regions = [Region(i + 1, b, 200, 0.003, ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), 9 - i * 0.01, 5.0) for i, b in enumerate(boxes)]
    inspection = Inspection("strip.png", (w, h), 70.0, True, np.zeros((h, w), np.float32), mask, regions)
    render_overlay(np.full((h, w, 3), 90, np.uint8), inspection, 0.0, 1.0, [label] * len(boxes))
    assert len(drawn) == len(boxes)
    assert all(b[0] >= -1 and b[1] >= -1 and b[2] <= w + 1 and b[3] <= h + 1 for b in drawn)  # a stroke may touch the edge
    clashes = [(a, b) for n, a in enumerate(drawn) for b in drawn[n + 1:] if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]
    assert clashes == []


# Guards a mutation audit found missing (2026-12-06): each value below is what the rule gives, worked out by hand.
def test_the_default_smallest_region_is_a_ten_thousandth_of_the_image():
    from defectlens.locate.regions import default_min_area

    # 0.01 % of the image, at least 4 pixels: a 10 × 10 defect on a megapixel image is kept (a tenfold minimum drops it).
    assert [default_min_area(100, 100), default_min_area(512, 512), default_min_area(1000, 1000)] == [4, 26, 100]
    anomaly = np.zeros((1000, 1000), np.float32)
    anomaly[100:110, 200:210] = 5.0
    assert [r.area_px for r in extract_regions(anomaly, 1.0)[2]] == [100]


def test_a_map_is_resized_back_smoothly_and_a_mask_covers_its_cells_by_area():
    # A linear ramp on the canvas stays strictly increasing at three times the size (bilinear); nearest would give steps of 3.
    _, placement = place(np.zeros((96, 96, 3), np.uint8), CanvasSpec(32, 32))
    back = map_to_original(torch.arange(32.0).repeat(32, 1), placement)
    assert back.shape == (96, 96) and np.all(np.diff(back[0, 3:-3]) > 0)
    # A 7 × 7 mask in a cell of 16 × 16 image pixels covers 49 / 256 of it: neither nearest resizing (0.25) nor max pooling (1).
    spec = CanvasSpec(64, 64)
    _, placement = place(np.zeros((128, 128, 3), np.uint8), spec)
    mask = np.zeros((128, 128), bool)
    mask[:7, :7] = True
    assert mask_to_grid(mask, placement, spec, (8, 8))[0, 0] == pytest.approx(49 / 256)
