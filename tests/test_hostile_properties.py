"""Property-based (hypothesis): whatever shape, mode, dtype or corrupted bytes arrive, the image
loader and ``Inspector.inspect`` end in an inspection or in the project's own error type."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from defectlens import Inspector
from defectlens.errors import DefectlensError
from defectlens.io import load_image
from defectlens.types import Inspection

DTYPES = [np.uint8, np.uint16, np.int32, np.int8, np.float32, np.float64, np.bool_, np.complex64]
PIL_MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "I;16", "F"]
FORMATS = {"PNG": ".png", "TIFF": ".tif", "BMP": ".bmp", "JPEG": ".jpg", "WEBP": ".webp"}
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def inspector(fitted_model) -> Inspector:
    return Inspector.load(fitted_model)


arrays = st.one_of(
    hnp.arrays(
        dtype=st.sampled_from(DTYPES),
        shape=st.tuples(st.integers(0, 40), st.integers(0, 40)) | st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(0, 6)),
    ),
    # Occasionally a wrong number of dimensions altogether.
    hnp.arrays(dtype=st.sampled_from(DTYPES), shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=12)),
)


@SETTINGS
@given(array=arrays)
def test_any_array_ends_in_an_inspection_or_our_error(inspector, array):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = inspector.inspect(array)
        except DefectlensError:
            return
    assert isinstance(result, Inspection) and result.anomaly_map.shape == array.shape[:2]


def _encoded(mode: str, fmt: str, width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).convert(mode if mode not in ("I;16", "F") else "L")
    if mode in ("I;16", "F", "I"):
        img = img.convert("I") if mode == "I" else Image.fromarray(np.asarray(img).astype(np.uint16 if mode == "I;16" else np.float32))
    buf = io.BytesIO()
    try:
        img.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):
        Image.new("RGB", (width, height)).save(buf, format=fmt)  # the format cannot hold that mode
    return buf.getvalue()


@st.composite
def corrupted_files(draw) -> tuple[str, bytes]:
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    data = bytearray(_encoded(draw(st.sampled_from(PIL_MODES)), fmt, draw(st.integers(1, 48)), draw(st.integers(1, 48)), draw(st.integers(0, 99))))
    damage = draw(st.sampled_from(["none", "truncate", "flip", "garbage"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif damage == "garbage":
        data = bytearray(draw(st.binary(max_size=256)))
    return FORMATS[fmt], bytes(data)


@SETTINGS
@given(file=corrupted_files())
def test_any_file_ends_in_an_image_or_our_error(inspector, tmp_path_factory, file):
    suffix, data = file
    path = tmp_path_factory.mktemp("hostile") / f"input{suffix}"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            image = load_image(path)
        except DefectlensError:
            return
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert isinstance(inspector.inspect(path), Inspection)
