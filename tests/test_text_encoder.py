"""The offline sentence encoder (all-MiniLM-L6-v2 shipped as a package)."""

from __future__ import annotations

import numpy as np
import pytest

from defectlens.encode.text import TEXT_DIM, TextEncoder
from defectlens.errors import ModelFileError


@pytest.fixture(scope="module")
def text() -> TextEncoder:
    return TextEncoder()


def test_embeddings_are_normalised_and_cached(text):
    e = text.embed(["a crack in the tile", "a scratch on steel"])
    assert e.shape == (2, TEXT_DIM) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    again = text.embed(["a scratch on steel"])
    np.testing.assert_array_equal(again[0], e[1])
    assert text.embed([]).shape == (0, TEXT_DIM)


def test_paraphrases_are_closer_than_unrelated_sentences(text):
    a, b, c = text.embed(
        [
            "a thin dark crack running across the surface",
            "a fine fissure line crossing the surface",
            "the quarterly sales report is due on Friday",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.2


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match=r"config\.json"):
        TextEncoder(tmp_path).embed(["anything"])
