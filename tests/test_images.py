"""Decoding: every mode, depth and orientation; clear errors for bad files."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from PIL import Image

from defectlens.errors import DefectlensWarning, ImageReadError
from defectlens.io import IMAGE_SUFFIXES, as_rgb_image, load_image, load_mask


def _save(tmp_path, img: Image.Image, name: str, **kw):
    path = tmp_path / name
    img.save(path, **kw)
    return path


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "1", "CMYK"])
def test_every_mode_becomes_rgb_uint8(tmp_path, mode):
    img = Image.new("RGB", (40, 30), (200, 100, 50)).convert(mode)
    path = _save(tmp_path, img, f"x_{mode}.png" if mode != "CMYK" else "x.jpg")
    arr = load_image(path)
    assert arr.shape == (30, 40, 3) and arr.dtype == np.uint8


def test_sixteen_bit_png_keeps_relative_brightness(tmp_path):
    data = np.full((20, 20), 60000, np.uint16)
    data[:10] = 6000
    path = tmp_path / "deep.png"
    Image.fromarray(data).save(path)
    arr = load_image(path)
    # Fixed 65535 -> 255 mapping: 60000 -> ~233, 6000 -> ~23 (not stretched per image).
    assert abs(int(arr[15, 0, 0]) - 233) <= 1 and abs(int(arr[0, 0, 0]) - 23) <= 1


def test_transparent_pixels_become_mid_grey(tmp_path):
    img = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    with pytest.warns(DefectlensWarning, match="100% of the image is more than half transparent"):
        arr = load_image(_save(tmp_path, img, "clear.png"))
    assert tuple(arr[0, 0]) == (128, 128, 128)


def test_transparency_is_filled_band_by_band_as_in_one_piece(monkeypatch):
    # The fill works a band of rows at a time (a 36 M-pixel RGBA upload peaked at 3.1 GB with
    # whole-image grids, 1.0 GB in bands): a band's edge must not change a single pixel.
    from defectlens.io import images

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (37, 29, 3), dtype=np.uint8)
    alpha = np.where(rng.random((37, 29)) < 0.4, 0, 255).astype(np.uint8)
    alpha[5:9] = rng.integers(0, 256, (4, 29))
    whole = images._fill_transparent(rgb, alpha)
    monkeypatch.setattr(images, "FILL_BAND_PIXELS", 29 * 3)
    assert np.array_equal(images._fill_transparent(rgb, alpha), whole)
    assert np.array_equal(whole[alpha == 255], rgb[alpha == 255]) and not np.array_equal(whole, rgb)


def test_a_side_too_long_for_the_overlay_is_refused_from_the_header(tmp_path):
    # libpng writes no side over 1 000 000: such a strip was decoded and scored, then failed.
    path = tmp_path / "strip.png"
    Image.new("1", (8, 1_000_001)).save(path)
    with pytest.raises(ImageReadError, match=r"8x1000001, a side longer than 1,000,000 pixels"):
        load_image(path)
    with pytest.raises(ImageReadError, match="a side longer than"):
        as_rgb_image(np.zeros((1_000_001, 8), np.uint8))


def test_exif_rotation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (10, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = _save(tmp_path, img, "rot.jpg", exif=exif)
    assert load_image(path).shape[:2] == (40, 20)


def test_bad_files_name_the_file_and_the_fix(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    good = _save(tmp_path, Image.new("RGB", (64, 64), (1, 2, 3)), "ok.png")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:60])
    # Only the formats of the suffixes are decoded: an icon's reader decodes its embedded image
    # to read the header, before any size check (a small file can hold 169 M pixels).
    icon = _save(tmp_path, Image.new("RGB", (64, 64)), "icon.ico")
    icon = icon.rename(tmp_path / "icon.png")
    for path, words in [
        (empty, "empty"),
        (text, "not a readable image"),
        (icon, "not what its name says"),
        (truncated, "corrupt or truncated"),
        (tmp_path / "missing.png", "no such file"),
    ]:
        with pytest.raises(ImageReadError) as info:
            load_image(path)
        message = str(info.value)
        assert str(path) in message and words in message and "fix:" in message


def test_mask_size_mismatch_is_an_error(tmp_path):
    path = _save(tmp_path, Image.new("L", (10, 12), 255), "m.png")
    with pytest.warns(DefectlensWarning, match="marks 100% of the image as defect"):
        assert load_mask(path, (10, 12)).all()
    with pytest.raises(ImageReadError, match="mask is 10x12 but its image is 20x12"):
        load_mask(path, (20, 12))


def test_a_mask_is_read_as_it_is_shown_turned_or_layered(tmp_path):
    # Messy-masks probe 2026-12-07: a mask saved turned with an EXIF orientation was read turned away from its defect, and a
    # white-on-black layer with a see-through margin was read from its alpha (the whole layer a defect); metrics wrong, unsaid.
    drawn = np.zeros((40, 30), bool)
    drawn[4:10, 3:9] = True
    for orientation, stored in ((3, np.rot90(drawn, 2)), (6, np.rot90(drawn, 1)), (8, np.rot90(drawn, -1))):
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(stored.astype(np.uint8) * 255).save(tmp_path / f"turned{orientation}.png", exif=exif.tobytes())
        assert np.array_equal(load_mask(tmp_path / f"turned{orientation}.png", (30, 40)), drawn), orientation
    layer = np.zeros((40, 30, 4), np.uint8)
    layer[..., 3] = 255
    layer[drawn, :3] = 255
    layer[:, 27:, 3] = 0  # a layer narrower than the canvas
    Image.fromarray(layer).save(tmp_path / "layer.png")
    assert np.array_equal(load_mask(tmp_path / "layer.png"), drawn)
    # Painted in one colour on see-through: the alpha is the defect, whatever the colour under the clear pixels.
    painted = np.zeros((40, 30, 4), np.uint8)
    painted[..., :3] = 255
    painted[drawn] = (255, 0, 0, 255)
    Image.fromarray(painted).save(tmp_path / "painted.png")
    assert np.array_equal(load_mask(tmp_path / "painted.png"), drawn)
    # A 0/1 mask through JPEG holds no defect any more: refused with its fix, not read as 100 % defect and told to invert it.
    Image.fromarray(drawn.astype(np.uint8)).save(tmp_path / "ones.jpg", quality=70)
    with pytest.raises(ImageReadError, match=r"ones\.jpg: mask saved as JPEG with values of at most \d.* fix: save the mask as PNG"):
        load_mask(tmp_path / "ones.jpg")
    Image.fromarray(drawn.astype(np.uint8) * 255).save(tmp_path / "full.jpg", quality=90)
    assert (load_mask(tmp_path / "full.jpg") == drawn).mean() > 0.98
    # Regression probe 2026-12-07: a 0/10 JPEG still reads and an all-black one is empty; strokes of several colours on
    # see-through (a black outline round a red fill) are all defect; a grey TIFF turned 5 to 8 reads upright (Pillow shears it).
    Image.fromarray(drawn.astype(np.uint8) * 10).save(tmp_path / "tens.jpg", quality=95)
    assert (load_mask(tmp_path / "tens.jpg") == drawn).mean() > 0.9
    Image.fromarray(np.zeros_like(drawn, np.uint8)).save(tmp_path / "black.jpg")
    assert not load_mask(tmp_path / "black.jpg").any()
    strokes = np.zeros((40, 30, 4), np.uint8)
    strokes[drawn] = (255, 0, 0, 255)
    strokes[20:24, 10:20] = (0, 0, 0, 255)
    Image.fromarray(strokes).save(tmp_path / "strokes.png")
    assert load_mask(tmp_path / "strokes.png").sum() == drawn.sum() + 40
    for orientation, stored in ((6, np.rot90(drawn, 1)), (8, np.rot90(drawn, -1))):
        Image.fromarray(stored.astype(np.uint8) * 255).save(tmp_path / f"grey{orientation}.tif", tiffinfo={0x0112: orientation})
        assert np.array_equal(load_mask(tmp_path / f"grey{orientation}.tif", (30, 40)), drawn), orientation
        assert np.array_equal(load_image(tmp_path / f"grey{orientation}.tif")[..., 0] > 127, drawn), orientation
    # ... a palette one, and a BigTIFF (its header is not a classic TIFF's); other pages still said (regression probe 2026-12-07).
    palette = Image.fromarray(np.rot90(drawn, 1).astype(np.uint8), "P")
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.save(tmp_path / "palette6.tif", tiffinfo={0x0112: 6})
    assert np.array_equal(load_image(tmp_path / "palette6.tif")[..., 0] > 127, drawn)
    raw = (np.rot90(drawn, 1).astype(np.uint8) * 255).tobytes()
    tags = [(256, 4, 1, 40), (257, 4, 1, 30), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (273, 16, 1, 16), (274, 3, 1, 6),
            (277, 3, 1, 1), (278, 4, 1, 30), (279, 16, 1, len(raw))]
    big = b"II+\x00" + struct.pack("<HHQ", 8, 0, 16 + len(raw)) + raw + struct.pack("<Q", len(tags))
    (tmp_path / "big6.tif").write_bytes(big + b"".join(struct.pack("<HHQQ", *t) for t in tags) + struct.pack("<Q", 0))
    assert np.array_equal(load_mask(tmp_path / "big6.tif", (30, 40)), drawn)
    pages = [Image.fromarray(np.rot90(drawn, 1).astype(np.uint8) * 255)] * 2
    pages[0].save(tmp_path / "pages6.tif", save_all=True, append_images=pages[1:], tiffinfo={0x0112: 6})
    with pytest.warns(DefectlensWarning, match="2 pages; only the first is inspected"):
        assert np.array_equal(load_image(tmp_path / "pages6.tif")[..., 0] > 127, drawn)
    # A white-on-black layer under half the canvas with a see-through margin is read by its colours (it had been read whole).
    small_layer = np.zeros((40, 30, 4), np.uint8)
    small_layer[:20, :, 3] = 255
    small_layer[4:10, 3:9, :3] = 255
    Image.fromarray(small_layer).save(tmp_path / "small_layer.png")
    assert np.array_equal(load_mask(tmp_path / "small_layer.png"), drawn)
    # Fourth regression probe: a layer's defect over most of it; a rectangle painted on see-through in a dark fill with a bright
    # edge (no black layer); a defect drawn on a translucent overlay (alpha 160 over most of the image).
    big = np.zeros((40, 30, 4), np.uint8)
    big[..., 3] = 255
    big[0, 0, 3] = 0
    big[:, :20, :3] = 255
    Image.fromarray(big).save(tmp_path / "big.png")
    assert load_mask(tmp_path / "big.png").sum() == 40 * 20 - 1
    fill = np.zeros((40, 30, 4), np.uint8)
    fill[5:35, 5:25] = (0, 100, 0, 255)
    fill[5:35, 5:7, :3] = 255
    Image.fromarray(fill).save(tmp_path / "fill.png")
    assert load_mask(tmp_path / "fill.png").sum() == 30 * 20
    overlay = np.zeros((40, 30, 4), np.uint8)
    overlay[:, :, :] = (90, 90, 90, 160)
    overlay[drawn] = (255, 0, 0, 255)
    Image.fromarray(overlay).save(tmp_path / "overlay.png")
    assert np.array_equal(load_mask(tmp_path / "overlay.png"), drawn)
    # A canvas in two tones, neither over half the image (regression probe 2026-12-08: read whole as defect).
    overlay[:20, :, 3], overlay[20:, :, 3] = 160, 100
    overlay[drawn] = (255, 0, 0, 255)
    Image.fromarray(overlay).save(tmp_path / "two_tones.png")
    assert np.array_equal(load_mask(tmp_path / "two_tones.png"), drawn)
    # Second probe: a gradient canvas is one too; a defect in two opacities over most of a clear background is no canvas.
    overlay[..., 3] = np.linspace(80, 180, 30).astype(np.uint8)[None, :]
    overlay[drawn] = (255, 0, 0, 255)
    Image.fromarray(overlay).save(tmp_path / "gradient.png")
    assert np.array_equal(load_mask(tmp_path / "gradient.png"), drawn)
    # Third probe: a canvas with a clear margin is one too, and said so; a defect filled at half opacity inside its opaque
    # outline, over most of the image, is defect whole.
    margined = np.zeros((40, 30, 4), np.uint8)
    margined[4:-4, 4:-4] = (128, 128, 128, 160)
    margined[drawn] = (255, 255, 255, 255)
    Image.fromarray(margined).save(tmp_path / "margined.png")
    with pytest.warns(DefectlensWarning, match=r"margined\.png: read as a defect drawn on a translucent canvas \(alpha about 160"):
        assert np.array_equal(load_mask(tmp_path / "margined.png"), drawn)
    outlined = np.zeros((40, 30, 4), np.uint8)
    outlined[2:-2, 2:-2] = (255, 0, 0, 255)
    outlined[3:-3, 3:-3] = (255, 0, 0, 128)
    Image.fromarray(outlined).save(tmp_path / "outlined.png")
    assert load_mask(tmp_path / "outlined.png").sum() == 36 * 26
    # Fourth probe: a large defect of its own shape filled at half opacity on a transparent background, its outline open or an
    # opaque dot beside it, is no canvas; a fill under half opacity inside its outline is defect too.
    yy, xx = np.mgrid[:40, :30]
    blob = (yy - 20) ** 2 + (xx - 15) ** 2 < 17 ** 2
    shaped = np.zeros((40, 30, 4), np.uint8)
    shaped[blob] = (255, 0, 0, 128)
    shaped[0:2, 0:2] = (0, 255, 0, 255)
    Image.fromarray(shaped).save(tmp_path / "shaped.png")
    with pytest.warns(DefectlensWarning, match="see-through .* and read as defect: if it is a canvas"):  # no rule can tell
        assert load_mask(tmp_path / "shaped.png").sum() == blob.sum() + 4
    # A canvas of another shape (round) is read at half, and said (fifth probe: read as defect without a word).
    round_canvas = np.zeros((40, 30, 4), np.uint8)
    round_canvas[blob] = (128, 128, 128, 160)
    round_canvas[drawn] = (255, 255, 255, 255)
    Image.fromarray(round_canvas).save(tmp_path / "round.png")
    with pytest.warns(DefectlensWarning, match=r"round\.png: \d+% of the mask is see-through \(alpha under 255\) and read as defect"):
        load_mask(tmp_path / "round.png")
    outlined[3:-3, 3:-3, 3] = 100
    Image.fromarray(outlined).save(tmp_path / "outlined100.png")
    assert load_mask(tmp_path / "outlined100.png").sum() == 36 * 26
    painted = np.zeros((40, 30, 4), np.uint8)
    painted[:12, :, :] = (255, 0, 0, 180)
    painted[12:24, :, :] = (255, 0, 0, 140)
    Image.fromarray(painted).save(tmp_path / "painted.png")
    assert load_mask(tmp_path / "painted.png").sum() == 24 * 30
    # A defect filled at half opacity with an opaque outline, a fifth of the image, is defect whole (fifth probe: read as overlay).
    half = np.zeros((40, 30, 4), np.uint8)
    half[10:30, 5:20] = (255, 0, 0, 128)
    half[10, 5:20, 3] = 255
    Image.fromarray(half).save(tmp_path / "half.png")
    assert load_mask(tmp_path / "half.png").sum() == 20 * 15


def test_png_bytes_round_trips_exactly_and_refuses_non_8_bit():
    import io

    from defectlens.io import png_bytes

    rng = np.random.default_rng(4)
    colour = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    for picture in (colour, colour[..., 1], Image.fromarray(colour), Image.fromarray(colour[..., 0]).convert("1")):
        decoded = np.asarray(Image.open(io.BytesIO(png_bytes(picture))))
        expected = np.asarray(picture.convert("RGB") if isinstance(picture, Image.Image) and picture.mode == "1" else picture)
        assert np.array_equal(decoded, expected)
    with pytest.raises(TypeError, match="8-bit"):
        png_bytes(colour.astype(np.float32))


def test_every_accepted_format_decodes_in_a_fresh_process(tmp_path):
    # Pillow registers most readers only when first needed: a format list naming one it never
    # registers (MPO) broke a fresh process's first TIFF or WebP. One fresh process (a CLI run),
    # a format that needs the full registry first.
    import subprocess
    import sys

    picture = Image.new("RGB", (40, 30), (10, 200, 30))
    paths = [_save(tmp_path, picture, f"p{suffix}") for suffix in sorted(IMAGE_SUFFIXES, key=lambda s: s != ".webp")]
    code = f"from defectlens.io import load_image; print([load_image(p).shape for p in {[str(p) for p in paths]!r}])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.count("(30, 40, 3)") == len(IMAGE_SUFFIXES), done.stderr[-500:]


def test_float_pixels_that_overshoot_one_are_still_zero_to_one(tmp_path):
    # Resampling overshoots 1 a little; read as 0..255 the image was black and a good part defective.
    rng = np.random.default_rng(0)
    unit = rng.random((32, 32, 3)).astype(np.float32)
    over = unit.copy()
    over[0, 0, 0] = 1.0001
    reference = as_rgb_image(unit)
    with pytest.warns(DefectlensWarning, match=r"1 value\(s\) above 1 \(up to 1.0001\) clipped"):
        read = as_rgb_image(over)
    assert read[0, 0, 0] == 255
    read[0, 0, 0] = reference[0, 0, 0]
    assert np.array_equal(read, reference)
    # Above the overshoot allowance the pixels are 0..255, as before.
    assert as_rgb_image(unit * 255).mean() == pytest.approx(reference.mean(), abs=0.5)


@pytest.mark.parametrize("mode", ["P", "CMYK", "L", "RGBA", "I;16"])
def test_a_pillow_image_is_read_as_its_file_would_be(tmp_path, mode):
    # np.asarray of a palette image gave its indices as grey, of a CMYK image K as alpha.
    rgb = np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    img = Image.fromarray(rgb).convert("I;16" if mode == "I;16" else mode) if mode != "I;16" else Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    path = _save(tmp_path, img, "x.tiff" if mode in ("CMYK", "I;16") else "x.png")
    with Image.open(path) as opened:
        assert np.array_equal(as_rgb_image(opened), load_image(path))
