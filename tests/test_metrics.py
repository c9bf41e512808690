"""Metrics against small cases worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import ndimage

from defectlens.evaluate.metrics import (
    DetectionMetrics,
    aupro,
    confusion,
    detection_metrics,
    f1_max,
    f1_max_threshold,
    image_ap,
    image_auroc,
    pixel_ap,
    pixel_auroc,
    pixel_f1_max,
    type_accuracy,
    type_macro_f1,
)

T, F = True, False


# ---------------------------------------------------------------- image level


def test_image_auroc_one_swapped_pair():
    # positives {0.2, 0.4}, negatives {0.1, 0.3}; pairs (pos > neg):
    # (0.2,0.1) yes, (0.2,0.3) no, (0.4,0.1) yes, (0.4,0.3) yes -> 3/4
    assert image_auroc([0, 0, 1, 1], [0.1, 0.3, 0.2, 0.4]) == pytest.approx(0.75)


def test_image_metrics_refuse_tables_and_maps():
    # API probe 2026-12-06: a (1, N) table was flattened without a word.
    with pytest.raises(ValueError, match=r"one label and one score per image \(1-D\), got shapes \(1, 2\) and \(1, 2\)"):
        image_auroc([[0, 1]], [[0.1, 0.9]])
    assert image_auroc([0, 1], [0.1, 0.9]) == 1.0
    from defectlens.evaluate.metrics import flagged_share, verdict_point

    with pytest.raises(ValueError, match="one label and one verdict per image"):
        verdict_point(0.3, [[0, 0, 1, 1]], [[False, True, True, True]])
    with pytest.raises(ValueError, match="one score per image"):
        flagged_share([[0.1, 0.9]], 0.5)
    assert verdict_point(0.3, [0, 0, 1, 1], [False, True, True, True]).false_alarm_rate == 0.5


def test_image_auroc_ties_give_half_credit():
    # positives {0.5, 0.9}, negatives {0.1, 0.5}:
    # (0.5,0.1) 1, (0.5,0.5) tie 0.5, (0.9,0.1) 1, (0.9,0.5) 1 -> 3.5/4
    assert image_auroc([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9]) == pytest.approx(0.875)
    # a single tied pair is worth exactly half
    assert image_auroc([False, True], [0.5, 0.5]) == pytest.approx(0.5)


def test_image_ap_hand_example():
    # ranked: 0.9 P (precision 1/1), 0.8 N, 0.7 P (precision 2/3), 0.1 N
    # AP = mean precision at the positives = (1 + 2/3) / 2 = 5/6
    assert image_ap([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(5 / 6)


def test_image_ap_tied_scores_form_one_threshold():
    # thresholds: >=0.9: TP0 FP1 (R=0); >=0.8: TP1 FP2 -> P=1/3, R=1/2; >=0.1: TP2 FP2 -> P=1/2, R=1
    # AP = sum (R_n - R_{n-1}) P_n = 1/2 * 1/3 + 1/2 * 1/2 = 5/12
    # (breaking the 0.8 tie positive-first would give (1/2 + 2/4)/2 = 0.5 instead)
    assert image_ap([0, 1, 0, 1], [0.9, 0.8, 0.8, 0.1]) == pytest.approx(5 / 12)


def test_f1_max_and_its_threshold():
    labels = np.array([0, 1, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    # t=0.5: TP1 FP0 FN2 -> P=1,   R=1/3 -> F1=0.5
    # t=0.4: TP2 FP0 FN1 -> P=1,   R=2/3 -> F1=0.8
    # t=0.3: TP2 FP1 FN1 -> P=2/3, R=2/3 -> F1=2/3
    # t=0.2: TP3 FP1 FN0 -> P=3/4, R=1   -> F1=1.5/1.75 = 6/7  <- best
    # t=0.1: TP3 FP2 FN0 -> P=3/5, R=1   -> F1=1.2/1.6 = 0.75
    assert f1_max(labels, scores) == pytest.approx(6 / 7)
    f1, thr = f1_max_threshold(labels, scores)
    assert f1 == pytest.approx(6 / 7)
    assert thr == pytest.approx(0.2)
    # the threshold really gives that F1 with ``scores >= thr``
    pred = scores >= thr
    tp = int(np.sum(pred & (labels == 1)))
    fp = int(np.sum(pred & (labels == 0)))
    fn = int(np.sum(~pred & (labels == 1)))
    assert 2 * tp / (2 * tp + fp + fn) == pytest.approx(f1)


def test_f1_max_threshold_with_ties():
    # t=0.9: TP1 FP0 FN1 -> F1 = 2/3; t=0.5 (both 0.5 switch together): TP2 FP1 -> P=2/3 R=1 -> 0.8
    assert f1_max_threshold([1, 0, 1], [0.5, 0.5, 0.9]) == pytest.approx((0.8, 0.5))


def test_one_class_gives_nan():
    assert math.isnan(image_auroc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert math.isnan(image_auroc([0, 0], [0.1, 0.2]))
    assert math.isnan(image_ap([0, 0], [0.1, 0.2]))
    assert math.isnan(image_ap([1, 1], [0.1, 0.2]))
    assert math.isnan(f1_max([0, 0], [0.1, 0.2]))
    assert math.isnan(image_auroc([], []))
    # Only defective images: flagging all of them is a trivial F1 of 1, reported n/a beside AUROC and AP (metrics audit).
    only_defective = detection_metrics([1, 1, 1], [0.1, 0.2, 0.3], [], [])
    assert math.isnan(only_defective.image_f1max) and math.isnan(only_defective.image_ap)
    # ... and so by f1_max itself, which had said 1.0 of the same scores (code review 2026-12-06).
    assert math.isnan(f1_max([1, 1, 1], [0.2, 0.5, 0.9])) and all(map(math.isnan, f1_max_threshold([1, 1], [0.2, 0.5])))


def test_image_length_mismatch_raises():
    with pytest.raises(ValueError, match="length"):
        image_auroc([0, 1, 1], [0.1, 0.2])


# ---------------------------------------------------------------- pixel level

# Image 0 (2x3):  mask            map
#                 T F F           0.9 0.1 0.2
#                 F T F           0.5 0.4 0.3
# Image 1 (1x2), no defect:       0.0 0.6
# positives {0.9, 0.4}; negatives {0.1, 0.2, 0.5, 0.3, 0.0, 0.6} (6, two from the good image)
PIX_MASKS = [np.array([[T, F, F], [F, T, F]]), np.zeros((1, 2), bool)]
PIX_MAPS = [np.array([[0.9, 0.1, 0.2], [0.5, 0.4, 0.3]]), np.array([[0.0, 0.6]])]


def test_pixel_auroc_counts_the_good_image():
    # 0.9 beats all 6 negatives; 0.4 beats {0.1, 0.2, 0.3, 0.0} = 4 -> 10/12 = 5/6
    # (ignoring the good image would give (4 + 3)/8 = 7/8)
    assert pixel_auroc(PIX_MASKS, PIX_MAPS) == pytest.approx(5 / 6)


def test_pixel_ap():
    # ranked: 0.9 P (1/1), 0.6 N, 0.5 N, 0.4 P (2/4), rest N -> AP = (1 + 1/2)/2 = 0.75
    assert pixel_ap(PIX_MASKS, PIX_MAPS) == pytest.approx(0.75)


def test_pixel_f1_max():
    # t=0.9: P=1,   R=1/2 -> 2/3;  t=0.6: P=1/2, R=1/2 -> 1/2;  t=0.5: P=1/3, R=1/2 -> 0.4
    # t=0.4: P=2/4, R=1   -> 2/3;  lower thresholds only add false positives -> max 2/3
    assert pixel_f1_max(PIX_MASKS, PIX_MAPS) == pytest.approx(2 / 3)


def test_pixel_metrics_accept_integer_masks():
    masks = [m.astype(np.uint8) * 255 for m in PIX_MASKS]
    assert pixel_auroc(masks, PIX_MAPS) == pytest.approx(5 / 6)


def test_pixel_metrics_without_defects_are_nan():
    masks = [np.zeros((2, 2), bool)]
    maps = [np.array([[0.1, 0.2], [0.3, 0.4]])]
    assert math.isnan(pixel_auroc(masks, maps))
    assert math.isnan(pixel_ap(masks, maps))
    assert math.isnan(pixel_f1_max(masks, maps))
    assert math.isnan(pixel_f1_max([np.ones((4, 4), bool)], [np.arange(16.0).reshape(4, 4)]))  # no normal pixel: as the image F1
    assert math.isnan(pixel_auroc([], []))


@pytest.mark.parametrize("fn", [pixel_auroc, pixel_ap, pixel_f1_max, aupro])
def test_shape_mismatch_names_the_index(fn):
    masks = [np.zeros((2, 3), bool), np.ones((2, 2), bool)]
    maps = [np.zeros((2, 3)), np.zeros((2, 3))]
    with pytest.raises(ValueError, match=r"anomaly map 1 differ in shape"):
        fn(masks, maps)


def test_count_mismatch_and_nan_scores_raise():
    with pytest.raises(ValueError, match="2 masks but 1 anomaly maps"):
        pixel_auroc([np.zeros((1, 2), bool)] * 2, [np.zeros((1, 2))])
    with pytest.raises(ValueError, match="anomaly map 0 contains NaN"):
        pixel_auroc([np.array([[T, F]])], [np.array([[np.nan, 0.0]])])


# ---------------------------------------------------------------- AUPRO


def test_aupro_perfect_map_is_one():
    # Every defect pixel scores above every normal pixel, across images of different sizes and a
    # good image: the curve climbs to PRO 1 at FPR 0 -> area 0.3 -> normalised 1.0.
    masks = [np.array([[T, T, F], [F, F, T]]), np.zeros((3, 2), bool), np.array([[F, T, F, F]])]
    maps = [m.astype(float) * 0.5 + 0.5 for m in masks]  # defect 1.0, normal 0.5
    assert aupro(masks, maps) == pytest.approx(1.0)


def test_aupro_inverted_map_is_zero():
    # Every normal pixel scores above every defect pixel: PRO stays 0 until FPR = 1.
    masks = [np.array([[T, T, F], [F, F, T]]), np.zeros((3, 2), bool)]
    maps = [np.where(m, 0.1, 0.9) for m in masks]
    assert aupro(masks, maps) == pytest.approx(0.0, abs=1e-12)


# 3x4 image, two regions A and B (not 8-connected: row 1 separates them), 8 normal pixels
# so each normal pixel moves the FPR by 1/8 = 0.125:
#     A  A  n1 n2
#     n3 n4 n5 n6
#     n7 n8 B  B
TWO_REGIONS = np.array([[T, T, F, F], [F, F, F, F], [F, F, T, T]])


def _two_region_map(b_score: float) -> np.ndarray:
    # A = 1.0 (found at FPR 0); normals 0.9, 0.8, ..., 0.2 in reading order; B given.
    return np.array([[1.0, 1.0, 0.9, 0.8], [0.7, 0.6, 0.5, 0.4], [0.3, 0.2, b_score, b_score]])


def test_aupro_two_regions_one_found_late():
    # B = 0.65 lies between the 3rd (0.7) and 4th (0.6) normal pixel: found at FPR 3/8 > 0.3.
    # curve: (0,0) (0,0.5)[A] (0.125,0.5) (0.25,0.5) (0.375,0.5) (0.375,1)[B] ... (1,1)
    # at FPR 0.3 the curve is interpolated on the flat segment 0.25..0.375 -> 0.5
    # area 0..0.3 = 0.3 * 0.5 = 0.15 -> /0.3 = 0.5
    assert aupro([TWO_REGIONS], [_two_region_map(0.65)]) == pytest.approx(0.5)


def test_aupro_interpolates_a_tied_segment_at_the_limit():
    # B = 0.7 ties with the 3rd normal pixel, so both switch at one threshold and the curve goes
    # diagonally from (0.25, 0.5) to (0.375, 1.0).
    # y(0.3) = 0.5 + 0.5 * (0.3 - 0.25) / 0.125 = 0.7
    # area = 0.25 * 0.5 + 0.5 * (0.5 + 0.7) * 0.05 = 0.125 + 0.03 = 0.155 -> /0.3 = 31/60
    assert aupro([TWO_REGIONS], [_two_region_map(0.7)]) == pytest.approx(31 / 60)


def test_aupro_full_range():
    # Same curve as the 0.65 case integrated to FPR 1: 0.375 * 0.5 + 0.625 * 1 = 0.8125
    assert aupro([TWO_REGIONS], [_two_region_map(0.65)], fpr_limit=1.0) == pytest.approx(0.8125)


def test_aupro_all_tied_pixels_switch_together():
    # Image 0 (1x2): defect + normal; image 1 (2x1): two normals; every score 0.5.
    # One threshold takes the curve from (0,0) straight to (1,1): area to 0.3 = 0.3*0.3/2 = 0.045
    # -> /0.3 = 0.15 (sorting the defect first would give 1.0, last would give 0.0)
    masks = [np.array([[T, F]]), np.zeros((2, 1), bool)]
    maps = [np.full((1, 2), 0.5), np.full((2, 1), 0.5)]
    assert aupro(masks, maps) == pytest.approx(0.15)


def test_aupro_fpr_is_over_normal_pixels_of_all_images():
    # Image 0 (2x2): defect 0.8, normals 0.9, 0.1, 0.1; image 1 (1x7): seven normals at 0.1.
    # 10 normal pixels: 0.9 -> (0.1, 0); 0.8 -> (0.1, 1); 0.1 -> (1, 1).
    # area to 0.3 = 0.2 * 1 = 0.2 -> /0.3 = 2/3
    # (counting only image 0's 3 normals, the defect would be found at FPR 1/3 > 0.3 -> 0)
    masks = [np.array([[T, F], [F, F]]), np.zeros((1, 7), bool)]
    maps = [np.array([[0.8, 0.9], [0.1, 0.1]]), np.full((1, 7), 0.1)]
    assert aupro(masks, maps) == pytest.approx(2 / 3)


def test_aupro_regions_are_8_connected():
    # (0,0) touches (1,1) only diagonally; (1,1)-(1,2) touch horizontally.
    #   D . .      1.0 0.5 0.5
    #   . D D      0.5 0.0 0.0
    #   . . .      0.5 0.5 0.5
    # 8-connectivity (MVTec): one region of 3 pixels; the 1.0 pixel covers 1/3 of it at FPR 0,
    # the tied normals then take the FPR to 1 -> AUPRO = 1/3.
    # (4-connectivity would give two regions, PRO 1/2 at FPR 0 -> 0.5)
    mask = np.array([[T, F, F], [F, T, T], [F, F, F]])
    amap = np.array([[1.0, 0.5, 0.5], [0.5, 0.0, 0.0], [0.5, 0.5, 0.5]])
    assert aupro([mask], [amap]) == pytest.approx(1 / 3)


def test_aupro_undefined_cases():
    assert math.isnan(aupro([np.zeros((2, 2), bool)], [np.zeros((2, 2))]))  # no defect region
    assert math.isnan(aupro([np.ones((2, 2), bool)], [np.zeros((2, 2))]))  # no normal pixel
    assert math.isnan(aupro([], []))
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro([TWO_REGIONS], [_two_region_map(0.65)], fpr_limit=0.0)


def _reference_pro_curve(masks: list[np.ndarray], maps: list[np.ndarray]) -> tuple[list[float], list[float]]:
    """MVTec AD's PRO curve computed the slow, obvious way, sharing no code with the implementation.

    One pass over all pixels per distinct score t: FPR(t) = normal pixels with score >= t over
    all normal pixels; PRO(t) = mean over 8-connected ground-truth regions of the share of the
    region's pixels with score >= t. The curve runs from (0, 0) to (1, 1).
    """

    regions = []
    for i, m in enumerate(masks):
        labeled, n = ndimage.label(m, structure=np.ones((3, 3), dtype=int))
        regions += [(i, labeled == k) for k in range(1, n + 1)]
    n_normal = sum(int((~m).sum()) for m in masks)
    fprs, pros = [0.0], [0.0]
    for t in sorted({float(v) for a in maps for v in a.ravel()}, reverse=True):
        fprs.append(sum(int(((a >= t) & ~m).sum()) for m, a in zip(masks, maps, strict=True)) / n_normal)
        pros.append(float(np.mean([(maps[i][r] >= t).mean() for i, r in regions])))
    fprs.append(1.0)
    pros.append(1.0)
    return fprs, pros


def _reference_aupro(fprs: list[float], pros: list[float], fpr_limit: float) -> float:
    """Trapezoids of the curve, each clipped at ``fpr_limit`` (the curve interpolated linearly
    there), summed and normalised by the limit."""
    area = 0.0
    for x0, x1, y0, y1 in zip(fprs, fprs[1:], pros, pros[1:], strict=False):
        if x0 >= fpr_limit:
            break
        if x1 > fpr_limit:
            y1 = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
            x1 = fpr_limit
        area += (x1 - x0) * (y0 + y1) / 2
    return area / fpr_limit


def _random_case(seed: int, levels: int | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A few images with many small defect regions (some touching diagonally, one image clean) and
    maps that favour the defects but overlap the normal pixels; ``levels`` quantises the scores
    into that many values, so that many pixels tie."""
    rng = np.random.default_rng(seed)
    masks, maps = [], []
    for i in range(4):
        h, w = rng.integers(18, 30, size=2)
        mask = np.zeros((h, w), bool)
        for _ in range(0 if i == 3 else int(rng.integers(4, 10))):
            y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
            mask[y : y + rng.integers(1, 4), x : x + rng.integers(1, 4)] = True
        amap = rng.random((h, w)) + 0.6 * mask * rng.random((h, w))
        if levels is not None:
            amap = np.round(amap * levels / 1.6) / levels
        masks.append(mask)
        maps.append(amap.astype(np.float32))
    return masks, maps


@pytest.mark.parametrize(("seed", "levels"), [(0, 4), (1, 4), (2, 12), (3, 12), (4, None), (5, None)])
def test_aupro_matches_a_straightforward_mvtec_implementation(seed, levels):
    masks, maps = _random_case(seed, levels)
    # Many regions of different sizes (the reference labels them itself, 8-connected).
    assert sum(ndimage.label(m, structure=np.ones((3, 3), dtype=int))[1] for m in masks) >= 10
    fprs, pros = _reference_pro_curve(masks, maps)
    for fpr_limit in (0.3, 0.05, 1.0):
        expected = _reference_aupro(fprs, pros, fpr_limit)
        assert 0.0 < expected < 1.0
        assert aupro(masks, maps, fpr_limit) == pytest.approx(expected, abs=1e-3), fpr_limit


# ---------------------------------------------------------------- defect types

TRUE = ["a", "a", "b", "b", "c"]
PRED = ["a", "unknown", "b", "a", "unknown"]


def test_type_accuracy_unknown_is_wrong():
    # correct: index 0 (a) and 2 (b) -> 2/5
    assert type_accuracy(TRUE, PRED) == pytest.approx(0.4)
    assert math.isnan(type_accuracy([], []))


def test_type_macro_f1_does_not_average_unknown():
    # a: TP1 (idx0) FP1 (idx3) FN1 (idx1) -> P=1/2 R=1/2 -> 1/2
    # b: TP1 FP0 FN1 (idx3)               -> P=1   R=1/2 -> 2/3
    # c: TP0 FN1                          -> 0
    # macro over {a, b, c} = (1/2 + 2/3 + 0)/3 = 7/18   (with an 'unknown' class: 7/24)
    assert type_macro_f1(TRUE, PRED) == pytest.approx(7 / 18)


def test_type_macro_f1_counts_spurious_real_types_and_explicit_labels():
    # default classes {a, b, c}: a F1=1, b F1=0 (missed), c F1=0 (only a false positive) -> 1/3
    assert type_macro_f1(["a", "b"], ["a", "c"]) == pytest.approx(1 / 3)
    # restricted to {a, b}: (1 + 0)/2
    assert type_macro_f1(["a", "b"], ["a", "c"], labels=["a", "b"]) == pytest.approx(0.5)
    # 'unknown' as a true type is a class like any other: both right -> 1
    assert type_macro_f1(["a", "unknown"], ["a", "unknown"]) == pytest.approx(1.0)


def test_confusion_matrix():
    # rows = true, columns = predicted, in the order a, b, c, unknown
    expected = np.array(
        [
            [1, 0, 0, 1],  # a: idx0 -> a, idx1 -> unknown
            [1, 1, 0, 0],  # b: idx3 -> a, idx2 -> b
            [0, 0, 0, 1],  # c: idx4 -> unknown
            [0, 0, 0, 0],  # no true 'unknown'
        ]
    )
    np.testing.assert_array_equal(confusion(TRUE, PRED, ["a", "b", "c", "unknown"]), expected)


def test_type_length_mismatch_raises():
    with pytest.raises(ValueError, match="length"):
        type_accuracy(["a"], ["a", "b"])


# ---------------------------------------------------------------- summary


def test_detection_metrics_and_json():
    m = detection_metrics([0, 0, 1, 1], [0.1, 0.3, 0.2, 0.4], PIX_MASKS, PIX_MAPS)
    assert m.image_auroc == pytest.approx(0.75)  # the swapped-pair case above
    # ranked 0.4 P (1/1), 0.3 N, 0.2 P (2/3) -> AP = 5/6
    assert m.image_ap == pytest.approx(5 / 6)
    # t=0.2: TP2 FP1 -> P=2/3 R=1 -> 0.8 (t=0.4: 2/3; t=0.1: 2/3)
    assert m.image_f1max == pytest.approx(0.8)
    assert m.pixel_auroc == pytest.approx(5 / 6)
    assert m.pixel_ap == pytest.approx(0.75)
    assert m.pixel_f1max == pytest.approx(2 / 3)
    # pixel case: 6 normals; 0.9 (defect) -> (0, 1/2); 0.6 -> (1/6, 1/2); 0.5 -> (1/3, 1/2);
    # at FPR 0.3 still 1/2 (flat segment) -> AUPRO = 0.5
    assert m.aupro == pytest.approx(0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.aupro = 1.0  # type: ignore[misc]
    out = m.to_json()
    assert set(out) == {f.name for f in dataclasses.fields(DetectionMetrics)}
    assert out["pixel_ap"] == pytest.approx(0.75)


def test_detection_metrics_nan_becomes_none():
    # all-good images: every metric needs defects -> all nan -> all None in JSON
    m = detection_metrics([0, 0], [0.1, 0.2], [np.zeros((2, 2), bool)], [np.zeros((2, 2))])
    assert math.isnan(m.image_auroc) and math.isnan(m.aupro)
    assert all(v is None for v in m.to_json().values())
    # no mask pairs at all: pixel metrics nan, image metrics still computed
    m = detection_metrics([0, 1], [0.1, 0.2], [], [])
    assert m.image_auroc == pytest.approx(1.0)
    assert m.to_json()["pixel_auroc"] is None


def test_image_labels_follow_calibrates_rule():
    # API probe 2026-12-06: "good"/"crack" read as two defective images (AUROC nan, no word), and a 2 as defective,
    # where calibrate refuses both.
    assert image_auroc([0, 1], [0.1, 0.2]) == image_auroc([False, True], [0.1, 0.2]) == image_auroc(np.array([0.0, 1.0]), [0.1, 0.2]) == 1.0
    for labels, said in ((["good", "crack"], "label 0 is 'good'"), ([0, 2], "label 1 is 2"), ([1, None], "label 1 is None")):
        with pytest.raises(ValueError, match=said):
            image_auroc(labels, [0.1, 0.2])
